"""Micro-batching: concurrent requests share one forward pass.

A transformer's forward pass on 32 short texts costs far less than 32 passes on one text each (the
matrix multiplies are wider, the per-call overhead is paid once). Requests go into a bounded
``asyncio.Queue``; one collector task takes the first waiting request, then keeps taking more until
the batch holds ``max_batch_size`` texts or ``max_wait`` has passed, and runs the batch in a single
inference thread (``run_in_executor``) so the event loop keeps accepting requests meanwhile. Each
request awaits its own future, resolved with its rows of the batch's output. A full queue refuses at
once (``QueueFullError``: the API answers 503 with Retry-After) instead of letting latency grow
without bound.

``DirectRunner`` is the unbatched baseline: each request's inference goes to the same single thread
on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

Predict = Callable[[list[str]], Sequence[Any]]


class QueueFullError(RuntimeError):
    """The inference queue is full; the caller should retry later."""


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def _split(outputs: Sequence[Any], sizes: list[int]) -> list[Sequence[Any]]:
    parts, start = [], 0
    for size in sizes:
        parts.append(outputs[start:start + size])
        start += size
    return parts


class DirectRunner:
    """One inference per request, in ``executor`` (the unbatched baseline)."""

    def __init__(self, predict: Predict, executor: ThreadPoolExecutor, on_batch: Callable[[int], None] | None = None):
        self.predict, self.executor, self.on_batch = predict, executor, on_batch

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def depth(self) -> int:
        return 0

    async def submit(self, texts: list[str]) -> Sequence[Any]:
        if self.on_batch:
            self.on_batch(len(texts))
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.predict, texts)


class MicroBatcher:
    """Collects concurrent requests into batches of at most ``max_batch_size`` texts.

    ``predict(texts)`` returns one output per text (a list or an array, sliceable); a request larger
    than ``max_batch_size`` runs as a batch of its own. ``on_batch(n_texts)`` is called per batch.
    """

    def __init__(self, predict: Predict, executor: ThreadPoolExecutor, *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256, on_batch: Callable[[int], None] | None = None):
        self.predict, self.executor, self.on_batch = predict, executor, on_batch
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task | None = None
        self._held: _Request | None = None  # taken from the queue but too big for the batch being built
        self._running: list[_Request] = []

    async def start(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._collect(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        pending = [*self._running, *([self._held] if self._held else [])]
        while self.queue is not None and not self.queue.empty():
            pending.append(self.queue.get_nowait())
        for request in pending:
            if not request.future.done():
                request.future.set_exception(RuntimeError("the service is shutting down"))

    @property
    def depth(self) -> int:
        """Requests waiting in the queue."""
        return 0 if self.queue is None else self.queue.qsize()

    async def submit(self, texts: list[str]) -> Sequence[Any]:
        """This request's outputs, once its batch has run; QueueFullError when the queue is full."""
        if self.queue is None or self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.max_queue} requests are already waiting for inference") from None
        return await request.future

    async def _next_batch(self) -> list[_Request]:
        loop = asyncio.get_running_loop()
        first = self._held or await self.queue.get()
        self._held = None
        batch, n_texts = [first], len(first.texts)
        deadline = loop.time() + self.max_wait
        while n_texts < self.max_batch_size:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            else:  # requests that queued up while the last batch ran join without waiting
                request = self.queue.get_nowait()
            if n_texts + len(request.texts) > self.max_batch_size:
                self._held = request
                break
            batch.append(request)
            n_texts += len(request.texts)
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [r for r in await self._next_batch() if not r.future.done()]  # drop cancelled callers
            if not batch:
                continue
            self._running = batch
            texts = [t for r in batch for t in r.texts]
            if self.on_batch:
                self.on_batch(len(texts))
            try:
                outputs = await loop.run_in_executor(self.executor, self.predict, texts)
            except Exception as error:  # every caller of the batch gets the error, the loop goes on
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                self._running = []
                continue
            for request, part in zip(batch, _split(outputs, [len(r.texts) for r in batch])):
                if not request.future.done():
                    request.future.set_result(part)
            self._running = []
