"""Stopping the local services' process trees, and reporting a service that does not come up.

The trees are real processes: a Python parent with children in its own process group and in sessions
of their own (as Prefect's worker starts flow runs). psutil, independently of ``stop_process``,
checks that none is left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from pipeline.app.services import STOP_TIMEOUT_S, Service, ServiceStartError, stop_process, wait_ready

SLEEPER = "import time; time.sleep(300)"
# A child in the parent's group, and a session leader with a child of its own.
TREE = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {SLEEPER!r}])
leader = "import os, subprocess, sys, time; os.setsid(); subprocess.Popen(sys.argv[1:]); time.sleep(300)"
subprocess.Popen([sys.executable, "-c", leader, sys.executable, "-c", {SLEEPER!r}])
time.sleep(300)
"""
# The same shape, every process deaf to SIGTERM (an ignored signal stays ignored in children).
DEAF_TREE = f"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n{TREE}"


def _start_tree(code: str, size: int) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """Start ``code`` in a session of its own, as the services start; wait for ``size`` processes below."""
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(below := psutil.Process(process.pid).children(recursive=True)) < size:
        assert time.monotonic() < deadline, f"the tree did not grow to {size} processes: {below}"
        time.sleep(0.05)
    return process, below


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # exited, waiting only for its parent's wait
    except psutil.NoSuchProcess:
        return False


def _gone_soon(procs: list[psutil.Process], timeout: float = 10) -> bool:
    """Whether all of ``procs`` have gone within ``timeout``: orphans are reaped by init, not by us."""
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_process_ends_the_whole_tree_even_in_other_sessions():
    process, below = _start_tree(TREE, 3)
    assert len({p.pid for p in below} | {process.pid}) == 4
    started = time.monotonic()
    stop_process(process, timeout=10)
    assert time.monotonic() - started < 10  # every process took the SIGTERM: no waiting for SIGKILL
    assert process.returncode == -signal.SIGTERM  # the Popen reaped its child and kept its status
    assert _gone_soon(below), [p for p in below if _running(p)]


def test_processes_that_ignore_sigterm_are_killed_after_the_timeout():
    process, below = _start_tree(DEAF_TREE, 3)
    started = time.monotonic()
    stop_process(process, timeout=1)
    assert 1 <= time.monotonic() - started < STOP_TIMEOUT_S
    assert process.returncode == -signal.SIGKILL
    assert _gone_soon(below), [p for p in below if _running(p)]


def test_group_members_orphaned_before_the_stop_are_stopped_too():
    # The parent exits first: its child is no longer below it, but still in its process group.
    code = (f"import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); "
            "print(child.pid, flush=True)")
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE,
                               text=True)
    orphan = psutil.Process(int(process.stdout.readline()))
    process.stdout.close()
    deadline = time.monotonic() + 30
    while orphan.ppid() == process.pid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orphan.ppid() != process.pid and _running(orphan)
    stop_process(process, timeout=5)
    assert process.returncode == 0
    assert _gone_soon([orphan])


def test_stop_process_after_the_process_has_exited_is_harmless():
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    process.wait(timeout=30)
    stop_process(process, timeout=1)
    assert process.returncode == 0


def test_wait_ready_reports_a_service_that_exits_with_its_log(tmp_path):
    log_path = tmp_path / "broken.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-c", "print('address already in use'); raise SystemExit(3)"],
                                   stdout=log, stderr=subprocess.STDOUT)
    service = Service("broken", process, log_path, lambda: False, "an answer")
    with pytest.raises(ServiceStartError, match=r"broken exited with code 3(.|\n)*address already in use"):
        wait_ready(service, timeout=30)


def test_wait_ready_gives_up_after_the_timeout(tmp_path):
    log_path = tmp_path / "slow.log"
    log_path.write_text("still starting\n")
    process = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
    try:
        service = Service("slow", process, log_path, lambda: False, "answer from /health")
        with pytest.raises(ServiceStartError, match=r"slow: no answer from /health within 1 s(.|\n)*still starting"):
            wait_ready(service, timeout=1)
    finally:
        stop_process(process, timeout=5)
