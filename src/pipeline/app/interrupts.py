"""Stopping ``mlpath run`` in order: Ctrl-C, SIGTERM and a lost Prefect API.

`RunGuard` wraps the in-process run. The first SIGINT or SIGTERM raises KeyboardInterrupt in the
main thread: Prefect marks the running task and flow runs crashed, the CLI then marks them
cancelled, ends the unit's MLflow run as KILLED and prints the summary; exit 130 (SIGINT) or 143
(SIGTERM). A second signal stops at once. A watchdog thread notices when Prefect's ephemeral API
server process exits and interrupts the run the same way (exit 1, with a message that says so).
Whatever hangs (a dead API's client retries, log flushing), the process exits ``GRACE_SECONDS``
after the first interruption: a deadline prints the summary if it was not printed yet, stops the
ephemeral server, and exits.

Prefect starts its ephemeral server as a child in mlpath's process group, so a terminal's Ctrl-C
(sent to the whole foreground group) used to kill the API together with the run, and nothing could
record that the run stopped. `detach_ephemeral_server` starts it in a process group of its own;
mlpath stops it on exit (Prefect's atexit hook, or the deadline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

EXIT_LOST_API = 1
GRACE_SECONDS = 8.0  # after a signal: room for Prefect and mlpath to record the stop
LOST_API_GRACE_SECONDS = 4.0  # without an API nothing can be recorded: stop sooner
_SIGNALS = {signal.SIGINT: ("SIGINT (Ctrl-C)", 130), signal.SIGTERM: ("SIGTERM", 143)}


class _OwnProcessGroup:
    """``subprocess`` as Prefect's server module sees it: ``Popen`` in a new process group."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 - stands in for subprocess.Popen
        kwargs.setdefault("process_group", 0)
        return subprocess.Popen(*args, **kwargs)


def detach_ephemeral_server() -> None:
    """Have Prefect start its ephemeral API server in its own process group (see the module doc).

    A no-op with ``PREFECT_API_URL`` set (no ephemeral server) or if Prefect's module changed shape.
    """
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api import server as api_server

    if getattr(api_server, "subprocess", None) is subprocess:
        api_server.subprocess = _OwnProcessGroup()


def ephemeral_server():
    """Prefect's ephemeral API server object for this process, None when there is none."""
    module = sys.modules.get("prefect.server.api.server")
    if module is None or os.environ.get("PREFECT_API_URL"):
        return None
    return module.SubprocessASGIServer._instances.get(None)


class RunGuard:
    """Signal handlers, the API watchdog and the exit deadline around one in-process run.

    ``summarize(reason)`` prints the summary; it is called once, by the CLI after cleanup or by the
    deadline. ``started()`` tells the watchdog that the API was up (a flow run began), so that a
    server still starting is not taken for a lost one. ``units_of_run()`` names the units running now
    (two overlap on the whole path; their MLflow runs are ended as KILLED). ``reason`` and
    ``exit_code`` are None until the run is interrupted.
    """

    def __init__(self, summarize: Callable[[str], None], started: Callable[[], bool],
                 units_of_run: Callable[[], list[str]] = list, grace: float = GRACE_SECONDS):
        self.summarize, self.started, self.units_of_run, self.grace = summarize, started, units_of_run, grace
        self.reason: str | None = None
        self.exit_code: int | None = None
        self.lost_api = False
        self.since = time.time()
        self._lock = threading.RLock()
        self._summarized = False
        self._injected = False
        self._stop = threading.Event()
        self._previous: dict[int, object] = {}
        self._deadline: threading.Timer | None = None

    def __enter__(self) -> RunGuard:
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        threading.Thread(target=self._watch_api, name="mlpath-api-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    # -- interruption -------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame) -> None:
        if self._injected:  # the watchdog's interrupt_main: the reason is set already
            self._injected = False
            raise KeyboardInterrupt
        name, code = _SIGNALS[signum]
        if self.reason is not None:
            print(f"\nmlpath run: {name} again: stopping now", file=sys.stderr, flush=True)
            self.hard_exit()
        self.interrupt(f"interrupted by {name}", code)
        print(f"\nmlpath run: {self.reason}; stopping (again to stop at once)", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    def interrupt(self, reason: str, code: int, grace: float | None = None) -> None:
        """Record why the run stops and arm the deadline; the first reason wins."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason, self.exit_code = reason, code
            self._deadline = threading.Timer(self.grace if grace is None else grace, self.hard_exit)
            self._deadline.daemon = True
            self._deadline.start()

    def _watch_api(self) -> None:
        seen = None
        while not self._stop.wait(0.5):
            server = ephemeral_server()
            process = getattr(server, "server_process", None)
            if process is None or not getattr(server, "running", False) or not self.started():
                continue
            if process is not seen:
                seen = process
                continue
            if process.poll() is None or self.reason is not None:
                continue
            self.lost_api = True
            self.interrupt(f"lost the Prefect API: its ephemeral server {server.api_url} (pid {process.pid}) "
                           f"exited with code {process.returncode}", EXIT_LOST_API,
                           min(self.grace, LOST_API_GRACE_SECONDS))
            print(f"\nmlpath run: {self.reason}; stopping the run", file=sys.stderr, flush=True)
            self._injected = True
            # a real signal, to the main thread: it also wakes a blocking wait (interrupt_main does not)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return

    def summarize_once(self) -> None:
        with self._lock:
            if self._summarized:
                return
            self._summarized = True
        try:
            self.summarize(self.reason or "interrupted")
        except Exception as exc:  # the summary must not stop the exit
            print(f"mlpath run: could not print the summary: {exc}", file=sys.stderr)

    def hard_exit(self) -> None:
        """The deadline (or a second signal): summary if not yet printed, server stopped, exit now."""
        self.summarize_once()
        for unit in self.units_of_run():
            kill_mlflow_runs(unit, self.since)
        stop_ephemeral_server()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code or 1)

    # -- cleanup after the interrupt reached the CLI ----------------------------------------------

    def cleanup(self, flow_run_id: str | None) -> None:
        """Mark the run's flow runs cancelled (not when the API is lost) and the MLflow runs of every
        unit running now KILLED."""
        if flow_run_id and not self.lost_api:
            cancel_flow_runs(flow_run_id, self.reason or "interrupted")
        for unit in self.units_of_run():
            kill_mlflow_runs(unit, self.since)


def cancel_flow_runs(flow_run_id: str, reason: str) -> None:
    """The flow run ``flow_run_id`` and its subflow runs, if not completed or failed, to Cancelled;
    their unfinished task runs too. Best effort: a failure is reported in one line."""
    try:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterParentFlowRunId,
            TaskRunFilter,
            TaskRunFilterFlowRunId,
        )
        from prefect.states import Cancelled

        message = f"mlpath run {reason}"
        with get_client(sync_client=True) as client:
            parent = UUID(flow_run_id)
            runs = [client.read_flow_run(parent), *client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))]
            for run in runs:
                if run.state is not None and run.state.type.value in ("COMPLETED", "FAILED", "CANCELLED"):
                    continue
                client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
                for task_run in client.read_task_runs(
                        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))):
                    if task_run.state is None or not task_run.state.is_final() or task_run.state.is_crashed():
                        client.set_task_run_state(task_run.id, Cancelled(message=message), force=True)
    except Exception as exc:
        print(f"mlpath run: could not mark the Prefect flow runs cancelled: {type(exc).__name__}: {exc}",
              file=sys.stderr)


def kill_mlflow_runs(unit: str | None, since: float) -> None:
    """End the interrupted unit's MLflow runs of this process as KILLED: the active one, and any
    in its experiment started since ``since`` and left RUNNING (or FAILED by the interrupt).

    Only when MLflow is imported already (else this process started no run). Best effort.
    """
    if "mlflow" not in sys.modules or unit is None:
        return
    try:
        import mlflow

        from pipeline.registry import client
        from pipeline.units import get_unit

        if mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
        mlflow_client = client()
        experiment = mlflow_client.get_experiment_by_name(get_unit(unit).experiment)
        if experiment is None:
            return
        runs = mlflow_client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.start_time >= {int(since * 1000)}")
        for run in runs:
            if run.info.status in ("RUNNING", "FAILED"):
                mlflow_client.set_terminated(run.info.run_id, status="KILLED")
    except Exception as exc:
        print(f"mlpath run: could not end the MLflow run as KILLED: {type(exc).__name__}: {exc}", file=sys.stderr)


def stop_ephemeral_server() -> None:
    server = ephemeral_server()
    process = getattr(server, "server_process", None)
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
