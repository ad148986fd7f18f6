"""Local servers on loopback: a Prefect server, a worker for the mlpath pool, the MLflow UI.

``local_services()`` starts them with the project's state (``MLPATH_HOME``: Prefect's home, the
MLflow database and artifacts), waits until each answers its health endpoint, and on exit stops
every process it started, each in a session of its own: SIGTERM to it, to every process below it
(psutil finds them, such as flow runs the worker started in sessions of their own) and to their
process groups, then SIGKILL to whatever is left after a timeout. ``start_ui()`` is ``mlpath ui``:
the same, plus the deployments, until Ctrl-C, printing links into both UIs (``ui_links``).

Output goes to ``MLPATH_HOME/logs/<service>.log``. Prefect is not imported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from pipeline import settings
from pipeline.app.deploy import WORK_POOL

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 15.0
# The worker's flow runs link their Prefect artifacts to the MLflow run through this variable;
# the same name and view as pipeline.registry's MLFLOW_UI_ENV and MODEL_TRAINING_VIEW (not
# imported: the registry imports pandas).
MLFLOW_UI_ENV = "MLPATH_MLFLOW_UI_URL"
# MLflow 3.17's UI opens on GenAI (traces) unless its sidebar switch, remembered per browser, says
# model training; a link with this query parameter opens model training.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


class ServiceStartError(RuntimeError):
    """A service did not come up (port taken, process exited, no answer within the timeout)."""


@dataclass
class Service:
    """A started process; ``ready`` answers whether it serves yet, ``waiting_for`` says what on."""

    name: str
    process: subprocess.Popen
    log_path: Path
    ready: Callable[[], bool]
    waiting_for: str


@dataclass
class Services:
    """What ``local_services`` started: URLs, the environment clients should use, the processes."""

    prefect_url: str
    mlflow_url: str | None
    log_dir: Path
    env: dict[str, str]
    processes: list[Service] = field(default_factory=list)

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_url}/api"

    def failed(self) -> list[str]:
        """Names of services whose process has exited."""
        return [s.name for s in self.processes if s.process.poll() is not None]


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _require_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            raise ServiceStartError(f"port {port} on {HOST} is in use, so the {what} cannot start there: "
                                    "another `mlpath ui`? Stop it or choose another port.")


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ServiceStartError(f"`{name}` is not installed in this environment ({sys.executable})")
    return found


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _processes_below(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` that is still running; none if ``pid`` has gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _descendants(pid: int) -> list[int]:
    """The ids of ``_processes_below(pid)`` (what the tests check after a stop)."""
    return [proc.pid for proc in _processes_below(pid)]


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie has exited, only its parent's wait is missing."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_groups(process: subprocess.Popen, descendants: list[psutil.Process], sig: int) -> None:
    """``sig`` to the process groups of the process and its descendants, ours excepted: a group
    member whose parent has already exited is no longer below the process, but still in its group."""
    # An exited child keeps its pid, so none other can have it, until the Popen has waited for it.
    pids = [proc.pid for proc in descendants] + ([process.pid] if process.returncode is None else [])
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    for group in groups - {os.getpgrp()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process, its descendants and their groups; SIGKILL whatever is left after ``timeout``."""
    descendants = _processes_below(process.pid)
    _signal_groups(process, descendants, signal.SIGTERM)
    process.terminate()
    for proc in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    deadline = time.monotonic() + timeout
    # The Popen waits for its own child, so that it keeps the exit status; psutil for the others.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    _, survivors = psutil.wait_procs(descendants, timeout=max(0.0, deadline - time.monotonic()))
    if survivors or process.poll() is None:
        _signal_groups(process, survivors, signal.SIGKILL)
        process.kill()
        for proc in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(survivors, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _start(name: str, command: list[str], env: Mapping[str, str], log_dir: Path, cwd: Path,
           stack: contextlib.ExitStack, ready: Callable[[], bool], waiting_for: str) -> Service:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    stack.callback(stop_process, process)
    return Service(name, process, log_path, ready, waiting_for)


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 200."""
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False
    return check


def worker_polls(api_url: str, worker_name: str) -> Callable[[], bool]:
    """A readiness check: the worker has registered with the pool (it heartbeats on its first poll)."""
    def check() -> bool:
        request = urllib.request.Request(f"{api_url}/work_pools/{WORK_POOL}/workers/filter", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return any(w.get("name") == worker_name for w in json.load(response))
        except (OSError, ValueError):
            return False
    return check


def wait_ready(service: Service, timeout: float) -> None:
    """Poll until the service is ready; raise, with the end of its log, if it exits or times out."""
    deadline = time.monotonic() + timeout
    while not service.ready():
        if service.process.poll() is not None:
            raise ServiceStartError(f"{service.name} exited with code {service.process.returncode}; "
                                    f"last lines of {service.log_path}:\n{_log_tail(service.log_path)}")
        if time.monotonic() > deadline:
            raise ServiceStartError(f"{service.name}: no {service.waiting_for} within {timeout:.0f} s; "
                                    f"last lines of {service.log_path}:\n{_log_tail(service.log_path)}")
        time.sleep(0.5)


def _base_env() -> dict[str, str]:
    """The children's environment: the project's state by absolute path, whatever their cwd."""
    home = settings.configure_environment()
    env = {**os.environ, "MLPATH_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)
    return env


@contextlib.contextmanager
def local_services(prefect_port: int = 4200, mlflow_port: int = 5000, *, worker: bool = True,
                   mlflow: bool = True, extra_env: Mapping[str, str] | None = None,
                   startup_timeout: float = 180) -> Iterator[Services]:
    """Start the Prefect server (and a worker for the pool, and the MLflow UI) on loopback.

    Yields a ``Services`` whose ``env`` points a client at the server. Every process is stopped
    on exit, also when starting one of them fails. ``extra_env`` goes to every process (tests
    shorten the worker's polling interval with it). With ``MLFLOW_TRACKING_URI`` at an HTTP
    server, no MLflow UI is started: that server is the UI.
    """
    base = {**_base_env(), **(extra_env or {})}
    home = Path(base["MLPATH_HOME"])
    log_dir = home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    tracking = settings.tracking_uri()
    start_mlflow = mlflow and not tracking.startswith(("http://", "https://"))
    _require_free(prefect_port, "Prefect server")
    if start_mlflow:
        _require_free(mlflow_port, "MLflow UI")

    prefect_url = f"http://{HOST}:{prefect_port}"
    with contextlib.ExitStack() as stack:
        # Without PREFECT_SERVER_API_PORT the UI served on another port still calls port 4200.
        server_env = {**base, "PREFECT_SERVER_API_HOST": HOST, "PREFECT_SERVER_API_PORT": str(prefect_port)}
        server = _start("prefect-server", [_executable("prefect"), "server", "start", "--host", HOST,
                                           "--port", str(prefect_port)],
                        server_env, log_dir, home, stack, answers(f"{prefect_url}/api/health"),
                        f"answer from {prefect_url}/api/health")
        services = Services(prefect_url, None, log_dir, {**base, "PREFECT_API_URL": f"{prefect_url}/api"},
                            [server])
        if start_mlflow:
            services.mlflow_url = f"http://{HOST}:{mlflow_port}"
            services.processes.append(_start(
                "mlflow-ui", [_executable("mlflow"), "ui", "--backend-store-uri", tracking,
                              "--default-artifact-root", settings.artifact_root().as_uri(),
                              "--host", HOST, "--port", str(mlflow_port)],
                # MLflow's job runner (GenAI features we do not use) would add several processes.
                {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **base}, log_dir, home, stack,
                answers(f"{services.mlflow_url}/health"),
                f"answer from {services.mlflow_url}/health"))
        elif mlflow:
            services.mlflow_url = tracking
        if services.mlflow_url:
            services.env[MLFLOW_UI_ENV] = services.mlflow_url
        wait_ready(server, startup_timeout)
        if worker:
            # Results persist (under PREFECT_HOME) so `run_deployment(...).state.result()` can read them.
            worker_env = {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true", **services.env}
            name = f"mlpath-worker-{prefect_port}"
            services.processes.append(_start(
                "prefect-worker", [_executable("prefect"), "worker", "start", "--pool", WORK_POOL,
                                   "--type", "process", "--name", name],
                worker_env, log_dir, home, stack, worker_polls(services.prefect_api_url, name),
                f"worker {name} polling pool {WORK_POOL}"))
        for service in services.processes[1:]:
            wait_ready(service, startup_timeout)
        yield services


def ui_links(prefect_url: str | None, mlflow_url: str | None) -> list[tuple[str, str]]:
    """(what, URL) for the pages a learner opens: Prefect's flow runs and deployments, MLflow's
    experiments and registered models on its model-training view (``MODEL_TRAINING_VIEW``)."""
    links = []
    if prefect_url:
        prefect_url = prefect_url.rstrip("/")
        links += [("Prefect flow runs", f"{prefect_url}/runs"),
                  ("Prefect deployments", f"{prefect_url}/deployments")]
    if mlflow_url:
        mlflow_url = mlflow_url.rstrip("/")
        links += [("MLflow experiments", f"{mlflow_url}/#/experiments?{MODEL_TRAINING_VIEW}"),
                  ("MLflow models", f"{mlflow_url}/#/models?{MODEL_TRAINING_VIEW}")]
    return links


def format_links(links: list[tuple[str, str]]) -> str:
    width = max((len(what) for what, _ in links), default=0) + 1
    return "\n".join(f"{what + ':':<{width}}  {url}" for what, url in links)


def start_ui(prefect_port: int = 4200, mlflow_port: int = 5000, deploy: bool = True) -> int:
    """``mlpath ui``: the servers and a worker, the deployments applied; blocks until Ctrl-C.

    Returns 0 after Ctrl-C (or SIGTERM), 1 if a service fails to start or dies. Call it from the
    main thread (it handles SIGINT and SIGTERM).
    """
    from pipeline.app.deploy import DeploymentError, apply_deployments

    def interrupt(*_) -> None:
        # Stopping takes seconds; a second Ctrl-C must not cut it short and leave servers behind.
        for sig in handled:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    # SIGTERM stops the servers too, and SIGINT works even where a shell started us ignoring it.
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, interrupt) for sig in handled}
    print(f"Starting the Prefect server, a worker for {WORK_POOL} and the MLflow UI "
          f"(logs: {settings.mlpath_home() / 'logs'}) ...", flush=True)
    try:
        with local_services(prefect_port, mlflow_port) as services:
            if deploy:
                names = apply_deployments(services.prefect_api_url)
                print(f"Deployments on pool {WORK_POOL}: {', '.join(names)}")
            print(format_links(ui_links(services.prefect_url, services.mlflow_url)))
            print("Ctrl-C stops them all.", flush=True)
            while not (failed := services.failed()):
                time.sleep(1)
            print(f"mlpath ui: {', '.join(failed)} stopped unexpectedly; see {services.log_dir}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nStopped the Prefect server, the worker and the MLflow UI.")
        return 0
    except (ServiceStartError, DeploymentError) as exc:
        print(f"mlpath ui: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
