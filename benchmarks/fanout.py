"""Fan-out: Unit 6's full profile and the whole quick path, sequential against fanned out.

Each case is one `mlpath run` in a fresh process and a fresh MLPATH_HOME (the datasets from the
mirror), so every run pays the same start-up (Prefect's ephemeral server, imports) and finds no
champion to compare with. "sequential" is one task and one unit at a time; "threads" and "dask"
submit the independent tasks to threads or to a local Dask cluster of two worker processes and run
up to two units of the path at once. The wall time of each run and its ratio to the sequential run
are printed (a failed run stops the benchmark), and whether each fanned-out run registered the
sequential run's primary metrics (same seeds). ``python -m benchmarks.fanout [unit06|path]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CASES = {  # runner -> units of the path at once
    "sequential": 1,
    "threads": 2,
    "dask": 2,
}
WORKLOADS = {
    "unit06": ("Unit 6, full profile", ["unit06", "--profile", "full"]),
    "path": ("the whole path, quick profile", ["all", "--profile", "quick"]),
}


def timed_run(arguments: list[str], runner: str, concurrency: int) -> tuple[float, dict[str, float]]:
    """Seconds of one ``mlpath run`` and its registered primary metric per unit (from ``mlpath
    results --json`` in the same home)."""
    with tempfile.TemporaryDirectory(prefix="mlpath-bench-fanout-") as home:
        env = {**os.environ, "MLPATH_HOME": home, "MLPATH_PATH_CONCURRENCY": str(concurrency)}
        for variable in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_HOME", "MLPATH_DASK_ADDRESS"):
            env.pop(variable, None)
        command = [sys.executable, "-m", "pipeline", "run", *arguments, "--runner", runner]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
                               f"{done.stderr[-3000:]}")
        results = subprocess.run([sys.executable, "-m", "pipeline", "results", "--json"], env=env,
                                 capture_output=True, text=True, check=True)
    metrics = {unit: r["metrics"].get(r["primary_metric"]) for unit, r in json.loads(results.stdout).items()
               if r.get("primary_metric") and r.get("metrics")}
    return seconds, metrics


def compare(workload: str) -> None:
    title, arguments = WORKLOADS[workload]
    print(f"\nFan-out — {title}: wall seconds of `mlpath run {' '.join(arguments)}`, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start")
    print(f"  {'runner':12s} {'units at once':>13s} {'seconds':>9s} {'speed-up':>9s}  same metrics as sequential")
    baseline, reference = None, None
    for runner, concurrency in CASES.items():
        seconds, metrics = timed_run(arguments, runner, concurrency)
        if baseline is None:
            baseline, reference = seconds, metrics
        same = all(abs(metrics.get(unit, float("nan")) - value) <= 1e-9 for unit, value in reference.items()
                   if value is not None)
        print(f"  {runner:12s} {concurrency:>13d} {seconds:>9.1f} {baseline / seconds:>8.2f}x  "
              f"{'yes' if same else 'NO'}", flush=True)


def main(workloads: list[str] | None = None) -> None:
    for workload in workloads or list(WORKLOADS):
        compare(workload)


if __name__ == "__main__":
    main(sys.argv[1:] or None)
