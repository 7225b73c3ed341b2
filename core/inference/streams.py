"""Handing a request's output from the engine thread to its caller: blocking, streaming, asyncio."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator

from core.inference.jobs import Job
from core.inference.requests import GenerationResult, TokenDelta

Item = TokenDelta | GenerationResult | BaseException


class ResultWaiter:
    """Receives only the final result (or error) of one request; `wait` blocks for it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._item: GenerationResult | BaseException | None = None

    def put(self, item: Item) -> None:
        if not isinstance(item, TokenDelta):
            self._item = item
            self._done.set()

    def wait(self, timeout: float | None = None) -> GenerationResult:
        if not self._done.wait(timeout):
            raise TimeoutError("the generation did not finish in time")
        if isinstance(self._item, BaseException):
            raise self._item
        assert self._item is not None
        return self._item


class GenerationStream:
    """The deltas of one request, in order; iterating to the end makes `result()` available.

    Abandoning the iteration (a `break`, a closed generator) cancels the generation.
    """

    job: Job

    def __init__(self) -> None:
        self._queue: queue.Queue[Item] = queue.Queue()
        self._result: GenerationResult | None = None

    def put(self, item: Item) -> None:
        self._queue.put(item)

    def cancel(self) -> None:
        self.job.cancel()

    def __iter__(self) -> Iterator[TokenDelta]:
        try:
            while self._result is None:
                item = self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, GenerationResult):
                    self._result = item
                else:
                    yield item
        finally:
            if self._result is None:
                self.cancel()

    def result(self) -> GenerationResult:
        """The final result; consumes any deltas not read yet."""
        for _ in self:
            pass
        assert self._result is not None
        return self._result


class AsyncGenerationStream:
    """`GenerationStream` for asyncio; create it inside the running event loop."""

    job: Job

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._result: GenerationResult | None = None

    def put(self, item: Item) -> None:
        # Called from the engine thread; raises once the loop is closed, which cancels the job.
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def cancel(self) -> None:
        self.job.cancel()

    def __aiter__(self) -> AsyncIterator[TokenDelta]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[TokenDelta]:
        try:
            while self._result is None:
                item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, GenerationResult):
                    self._result = item
                else:
                    yield item
        finally:
            if self._result is None:  # abandoned or the consuming task was cancelled
                self.cancel()

    async def result(self) -> GenerationResult:
        """The final result; consumes any deltas not read yet."""
        async for _ in self:
            pass
        assert self._result is not None
        return self._result
