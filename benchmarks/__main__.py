"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from benchmarks import cnn_throughput, distributed, fanout, loop_overhead, mlp_vs_torch, serving

if __name__ == "__main__":
    mlp_vs_torch.main()
    cnn_throughput.main()
    loop_overhead.main()
    serving.main()
    distributed.main()
    fanout.main()
