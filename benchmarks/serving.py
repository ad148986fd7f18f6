"""Unit 13: requests/s and p50/p99 latency of the sentiment API, with and without micro-batching.

Each mode is its own `mlpath serve` process on a free loopback port (the command `make serve` and
the container run); the load generator (``pipeline.serving.load``: asyncio clients, one keep-alive
connection each, one-text requests of SST-2 dev sentences) runs in this process, so it never
shares an interpreter lock with the server. The served model is the registry's champion under
MLPATH_HOME when there is one, else the base MiniLM with an untrained head (the same compute; the
output says which). Goal on the 2-core machine: micro-batching at 32 clients ≥ 3× the unbatched
requests/s, with p99 ≤ 250 ms.

    python -m benchmarks.serving            # BENCH_SERVING_REQUESTS (default 400) per level and mode

BENCH_SERVING_THREADS sets the servers' torch threads (MLPATH_SERVE_TORCH_THREADS); by default the
servers use what `mlpath serve` uses, torch's default (one per core). Set it to 1 on a machine that
is busy with other jobs: there two torch threads spin against them and one-text requests slow down
many times over.

Before the servers start, the benchmark measures the speed-up of batching on **compute alone**, in
this process with no HTTP: milliseconds per text when each text is its own forward pass, against
texts in batches of 32 run as the server runs them (length-sorted chunks of ``forward_batch``), on
the servers' torch threads. Micro-batching saves per-pass overhead and runs wider matrix multiplies;
it does not remove a single multiply-add, so once a one-text pass is mostly multiply-adds the served
speed-up stays near this ratio (a little above it: batching also pays the server's per-inference
costs, the hand-off to the inference thread and the tokenizer call, once per batch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.serving.load import CONCURRENCY_LEVELS, free_port, run_load, wait_ready

GOAL_SPEEDUP, GOAL_P99_MS = 3.0, 250.0


def _model_folder(workdir: Path) -> tuple[Path, str]:
    """The champion fetched from the registry, else the base model with an untrained head, saved."""
    from pipeline.lessons.serving import base_untrained
    from pipeline.models.sentiment import SentimentModelError
    from pipeline.serving.fetch import fetch_model

    try:
        return fetch_model("models:/mlpath-sentiment@champion", workdir / "champion"), \
            "mlpath-sentiment@champion (from the registry under MLPATH_HOME)"
    except SentimentModelError:
        pass
    except Exception as error:  # noqa: BLE001 - no registry or no champion: fall back, and say so
        print(f"(no champion: {type(error).__name__}: {str(error)[:120]})")
    return base_untrained().save(workdir / "base"), "base MiniLM with an untrained head (no champion registered)"


def _ms_per_text(model, sample: list[str], size: int, chunk: int) -> float:
    """Mean ms per text over ``sample`` in calls of ``size`` texts, forward passes of ``chunk``."""
    import time

    model.predict_proba(sample[:size], batch_size=chunk)  # warm-up
    model.forget()
    start = time.perf_counter()
    for i in range(0, len(sample), size):
        model.predict_proba(sample[i:i + size], batch_size=chunk)
    model.forget()
    return (time.perf_counter() - start) / len(sample) * 1000


def compute_speedup(folder: Path, texts: list[str], labels, threads: str | None, *, n_texts: int = 96,
                    batch: int = 32) -> dict[str, dict]:
    """Per precision (fp32, and int8 as ``mlpath serve --int8`` runs it): ms per text one at a time
    vs in batches of ``batch`` (server-style chunks) and their ratio, and accuracy on all of
    ``texts``; for int8 also how far its probabilities move from fp32's (max |change|, labels kept)."""
    import numpy as np
    import torch

    from pipeline.models.sentiment import load_model_folder, quantize_int8
    from pipeline.serving.config import ServingConfig

    forward_batch = ServingConfig().forward_batch
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads) if threads else before)
    out = {}
    try:
        fp32 = load_model_folder(folder)
        sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), n_texts, replace=False)]
        int8 = quantize_int8(fp32)
        for name, model in (("fp32", fp32), ("int8", int8)):
            one, batched = _ms_per_text(model, sample, 1, 1), _ms_per_text(model, sample, batch, forward_batch)
            out[name] = {"one_ms": one, "batched_ms": batched, "ratio": one / batched,
                         "threads": torch.get_num_threads(), "batch": batch, "forward_batch": forward_batch}
        p32, p8 = fp32.predict_proba(texts), int8.predict_proba(texts)
        for name, p in (("fp32", p32), ("int8", p8)):
            out[name]["accuracy"] = float((p.argmax(1) == np.asarray(labels)).mean())
        out["int8"].update(max_change=float(np.abs(p32 - p8).max()),
                           labels_kept=float((p32.argmax(1) == p8.argmax(1)).mean()), n=len(texts))
    finally:
        torch.set_num_threads(before)
    return out


MODES = (("unbatched", False, False), ("micro-batching", True, False),
         ("unbatched int8", False, True), ("micro-batching int8", True, True))


def _serve(folder: Path, batching: bool, int8: bool, port: int, log: Path, threads: str | None) -> subprocess.Popen:
    argv = [str(Path(sys.executable).parent / "mlpath"), "serve", "--port", str(port), "--model", str(folder)]
    argv += ([] if batching else ["--no-batching"]) + (["--int8"] if int8 else [])
    env = {**os.environ, **({"MLPATH_SERVE_TORCH_THREADS": threads} if threads else {})}
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def main() -> list[dict]:
    from pipeline.data import load_dataset
    from pipeline.settings import configure_environment

    configure_environment()
    n_requests = int(os.environ.get("BENCH_SERVING_REQUESTS", "400"))
    threads = os.environ.get("BENCH_SERVING_THREADS") or None
    dev = load_dataset("sst2", "full").splits["dev"]
    texts = dev["sentence"].tolist()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlpath-bench-serving-") as tmp:
        folder, which = _model_folder(Path(tmp))
        print(f"\nServing benchmark — model: {which}; {n_requests} one-text requests per level, loopback, "
              f"{os.cpu_count()} CPUs, torch threads {threads or 'torch default'}, "
              f"load average {os.getloadavg()[0]:.1f}")
        compute = compute_speedup(folder, texts, dev["label"].to_numpy(), threads)
        for name, c in compute.items():
            print(f"compute alone, {name} (in process, no HTTP, {c['threads']} torch threads): {c['one_ms']:.1f} ms "
                  f"per text one at a time, {c['batched_ms']:.1f} ms in batches of {c['batch']} (chunks of "
                  f"{c['forward_batch']}) = x{c['ratio']:.2f}")
        c = compute["int8"]
        print(f"int8 against fp32 on the {c['n']} dev sentences: accuracy {c['accuracy']:.4f} vs "
              f"{compute['fp32']['accuracy']:.4f}, max |probability change| {c['max_change']:.4f}, "
              f"labels kept {c['labels_kept']:.1%}")
        for mode, batching, int8 in MODES:
            port = free_port()
            server = _serve(folder, batching, int8, port, Path(tmp) / f"serve-{mode}.log", threads)
            try:
                wait_ready(f"http://127.0.0.1:{port}", timeout=180, process=server)
                for concurrency in CONCURRENCY_LEVELS:
                    result = run_load(f"http://127.0.0.1:{port}", texts, concurrency, n_requests, warmup=16)
                    rows.append({"mode": mode, **result.as_dict()})
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(f"{'mode':<21}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for r in rows:
        print(f"{r['mode']:<21}{r['concurrency']:>8}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['errors']:>8}")
    top = max(CONCURRENCY_LEVELS)
    at_top = {r["mode"]: r for r in rows if r["concurrency"] == top}
    for precision, suffix in (("fp32", ""), ("int8", " int8")):
        batched, plain = at_top[f"micro-batching{suffix}"], at_top[f"unbatched{suffix}"]
        speedup = batched["rps"] / plain["rps"]
        met = speedup >= GOAL_SPEEDUP and batched["p99_ms"] <= GOAL_P99_MS
        print(f"{precision}, at {top} clients: micro-batching {batched['rps']:.1f} req/s vs {plain['rps']:.1f} "
              f"unbatched = x{speedup:.2f}, p99 {batched['p99_ms']:.0f} ms (goal x{GOAL_SPEEDUP:.0f}, p99 <= "
              f"{GOAL_P99_MS:.0f} ms: {'met' if met else 'NOT met'}; compute alone x{compute[precision]['ratio']:.2f})")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return rows


if __name__ == "__main__":
    main()
