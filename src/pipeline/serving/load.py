"""A load generator for the API, and the API run in a background thread.

``run_load(url, texts, concurrency, n_requests)`` keeps ``concurrency`` clients busy, each sending
one-text ``POST /predict`` requests back to back (one keep-alive connection each, a minimal
HTTP/1.1 client: a general one would take much of a 2-core machine's CPU), and returns the
throughput and the latency percentiles. ``measure`` runs it in a separate process (``python -m
pipeline.serving.load``), so the clients never share an interpreter lock with the server they
measure. ``ServerThread`` runs uvicorn in a thread of the calling process (for a flow, which wants
no second process loading the model).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

CONCURRENCY_LEVELS = (1, 8, 32)


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation, NaN for no values."""
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else float("nan")


class _Connection:
    """One keep-alive HTTP/1.1 connection, just enough to POST JSON and read the answer.

    A load generator must cost far less than the server it measures; a general client (httpx)
    spends milliseconds of CPU per request, which on a 2-core machine is taken from the server.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _load(url: str, texts: Sequence[str], concurrency: int, n_requests: int, timeout: float) -> LoadResult:
    from urllib.parse import urlsplit

    address = urlsplit(url)
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n_requests))

    async def client() -> None:
        nonlocal errors
        connection = _Connection(address.hostname, address.port)
        try:
            for i in counter:
                start = time.perf_counter()
                try:
                    ok = await asyncio.wait_for(connection.post("/predict", bodies[i % len(bodies)]), timeout) == 200
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, StopIteration):
                    ok = False
                    await connection.close()
                    connection = _Connection(address.hostname, address.port)
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        finally:
            await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ms = [1000 * t for t in latencies]
    return LoadResult(concurrency, n_requests, errors, seconds, len(latencies) / seconds,
                      percentile(ms, 50), percentile(ms, 99))


def run_load(url: str, texts: Sequence[str], concurrency: int, n_requests: int, warmup: int = 8,
             timeout: float = 60.0) -> LoadResult:
    """Throughput and latency of ``n_requests`` one-text requests from ``concurrency`` clients,
    after ``warmup`` requests that are not counted."""
    if warmup:
        asyncio.run(_load(url, texts, min(concurrency, warmup), warmup, timeout))
    return asyncio.run(_load(url, texts, concurrency, n_requests, timeout))


def measure(url: str, texts: Sequence[str], concurrency: int, n_requests: int, warmup: int = 8,
            timeout: float = 60.0) -> LoadResult:
    """``run_load`` in a separate process, so the clients do not compete with an in-process server."""
    job = {"url": url, "texts": list(texts), "concurrency": concurrency, "n_requests": n_requests,
           "warmup": warmup, "timeout": timeout}
    out = subprocess.run([sys.executable, "-m", "pipeline.serving.load"], input=json.dumps(job), text=True,
                         capture_output=True, timeout=timeout * 10 + n_requests)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{out.stderr[-2000:]}")
    return LoadResult(**json.loads(out.stdout))


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 120.0, process: subprocess.Popen | None = None) -> None:
    """Wait until ``url``/ready answers 200; raise with the reason (or the dead process's exit) otherwise."""
    import httpx

    deadline, reason = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            response = httpx.get(f"{url}/ready", timeout=2)
            if response.status_code == 200:
                return
            reason = response.text
        except httpx.TransportError as error:
            reason = str(error)
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready after {timeout:.0f} s: {reason}")


class ServerThread:
    """``create_app(config, model, source)`` under uvicorn in a daemon thread, on 127.0.0.1 and a free port.

    Use as a context manager; ``url`` is the base URL once entered.
    """

    def __init__(self, config, model=None, source: str | None = None):
        import uvicorn

        from pipeline.serving.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config.model_copy(update={"host": "127.0.0.1", "port": self.port}), model=model,
                              source=source)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, name=f"api-{self.port}", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        try:
            wait_ready(self.url)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def main() -> int:
    job = json.loads(sys.stdin.read())
    result = run_load(job["url"], job["texts"], job["concurrency"], job["n_requests"], job["warmup"], job["timeout"])
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
