"""The generation engine: one base model, many adapters, continuous batching on one thread.

    engine = Engine("smollm2-135m-instruct", cache_budget_bytes=1 << 30, max_batch_size=8)
    engine.register_adapter(AdapterKey("tenant-a", "ft-123"), "/runs/job-123/adapter")
    [result] = engine.generate([GenerationRequest(messages=[...], adapter_key=key, max_tokens=64)])
    for delta in engine.stream(request): ...              # or: async for delta in engine.astream(request)

A background thread owns the model. Each iteration it admits queued requests that fit
(`max_batch_size` rows; a request of n choices takes n rows) and prefills them together;
otherwise it runs one decode step for every row in flight. Newcomers therefore join the
running batch at the next step: their prefill runs on its own KV cache, which then joins
the running cache (`core.inference.batch`). Rows of one batch may use different adapters
(`core.inference.layer`); each row samples with its own settings and seeded generator, and
its tokens go back through its request's channel. Finished rows leave the batch at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from core.inference.batch import BatchRunner, DecodeState, can_join, join, select
from core.inference.cache import AdapterCache, CacheFullError, CacheStats
from core.inference.jobs import Job, Row, Sink
from core.inference.prompts import PromptEncoder, eos_ids
from core.inference.requests import GenerationRequest, GenerationResult
from core.inference.sampling import sample_next
from core.inference.slots import BASE
from core.inference.store import AdapterResolver, AdapterStore
from core.inference.streams import AsyncGenerationStream, GenerationStream, ResultWaiter
from core.inference.weights import AdapterKey, ServingAdapter
from core.models import LoadedModel, resolve_model


class EngineClosedError(RuntimeError):
    """The engine was closed before the request finished."""


class EngineOverloadedError(RuntimeError):
    """The queue is full; retry later (the service answers 429/503)."""


@dataclass(frozen=True)
class EngineStats:
    """Counters since start, for /metrics."""

    queued: int
    running_rows: int
    requests_completed: int
    requests_failed: int
    requests_cancelled: int
    prompt_tokens: int
    completion_tokens: int
    prefills: int
    decode_steps: int
    cache: CacheStats


class Engine:
    """Serves generations of one base model with many adapters, batched.

    Args:
        model: a base-model reference for `resolve_model`, or an already loaded model (its
            target modules are wrapped in place; with nothing bound they compute the base).
        cache_budget_bytes: memory budget of the adapter LRU cache (adapter tensor bytes).
        max_batch_size: rows (choices) decoded together at most.
        max_queued: requests waiting at most; beyond, `EngineOverloadedError`.
        resolve_adapter: maps a key to an adapter directory (e.g. a tenant-scoped database
            lookup); `register_adapter` entries take precedence.
        device, dtype: passed to `resolve_model` when `model` is a reference.
    """

    def __init__(
        self,
        model: str | LoadedModel,
        *,
        cache_budget_bytes: int = 1 << 30,
        max_batch_size: int = 8,
        max_queued: int = 1024,
        resolve_adapter: AdapterResolver | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size: must be >= 1, got {max_batch_size}")
        self.loaded = (
            model if isinstance(model, LoadedModel) else resolve_model(model, device=device, dtype=dtype)
        )
        self.model = self.loaded.model.eval()
        self.tokenizer = self.loaded.tokenizer
        self.max_batch_size, self.max_queued = max_batch_size, max_queued
        self.prompts = PromptEncoder(self.model, self.tokenizer, max_batch_size)
        self.eos_ids = eos_ids(self.tokenizer, self.model)
        pad = self.tokenizer.pad_token_id
        self.adapters = AdapterStore(
            self.model, self.loaded.dtype, self.loaded.device, cache_budget_bytes, resolve_adapter
        )
        self.runner = BatchRunner(
            self.model, self.adapters.table, pad if pad is not None else min(self.eos_ids), self.loaded.device
        )
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._rows: list[Row] = []
        self._state: DecodeState | None = None
        self._counts = dict.fromkeys(
            ("completed", "failed", "cancelled", "prompt", "completion", "prefills", "steps"), 0
        )
        self._thread = threading.Thread(target=self._loop, name="moetune-engine", daemon=True)
        self._thread.start()

    # ---- adapters -------------------------------------------------------------------------

    def register_adapter(self, key: AdapterKey, directory: str | os.PathLike[str]) -> None:
        """Serve the adapter saved in `directory` (a final adapter or a checkpoint's) under `key`."""
        self.adapters.register(key, directory)

    def unregister_adapter(self, key: AdapterKey) -> bool:
        """Stop serving `key` (requests in flight finish); returns whether it was registered."""
        return self.adapters.unregister(key)

    @property
    def cache(self) -> AdapterCache[ServingAdapter]:
        """The adapter LRU cache (its `stats()` are also in `Engine.stats().cache`)."""
        return self.adapters.cache

    # ---- submitting -----------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Complete `requests` (batched together with whatever else is running); blocks."""
        waiters = [ResultWaiter() for _ in requests]
        jobs: list[Job] = []
        try:
            for request, waiter in zip(requests, waiters, strict=True):
                jobs.append(self.submit(request, waiter.put, stream=False))
        except BaseException:
            for job in jobs:  # one invalid request fails the call: do not run the others
                job.cancel()
            raise
        return [w.wait() for w in waiters]

    def stream(
        self, request: GenerationRequest, cancel: Callable[[], bool] | None = None
    ) -> GenerationStream:
        """Token deltas of `request` as they are generated; iterate it, then `.result()`.

        Generation stops when `cancel()` returns True (checked every step), when
        `.cancel()` is called, or when the iteration is abandoned.
        """
        stream = GenerationStream()
        stream.job = self.submit(request, stream.put, stream=True, cancel=cancel)
        return stream

    def astream(
        self, request: GenerationRequest, cancel: Callable[[], bool] | None = None
    ) -> AsyncGenerationStream:
        """`stream` for asyncio: `async for delta in engine.astream(request)`; call in a running loop.

        Cancelling the consuming task (a client disconnect) cancels the generation.
        """
        stream = AsyncGenerationStream()
        stream.job = self.submit(request, stream.put, stream=True, cancel=cancel)
        return stream

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """`generate` for asyncio."""
        streams = [self.astream(r) for r in requests]
        return [await s.result() for s in streams]

    def submit(
        self,
        request: GenerationRequest,
        sink: Sink,
        *,
        stream: bool,
        cancel: Callable[[], bool] | None = None,
    ) -> Job:
        """Queue `request`; `sink` receives its deltas (if `stream`), then its result or error."""
        prompt = self.prompts.encode(request)
        job = Job(request, prompt, sink, stream, cancel)
        with self._cond:
            if self._closing:
                raise EngineClosedError("the engine is closed")
            if len(self._queue) >= self.max_queued:
                raise EngineOverloadedError(f"{len(self._queue)} requests queued; retry later")
            self._queue.append(job)
            self._cond.notify()
        return job

    def stats(self) -> EngineStats:
        with self._cond:
            c = dict(self._counts)
            queued, rows = len(self._queue), len(self._rows)
        return EngineStats(
            queued=queued,
            running_rows=rows,
            requests_completed=c["completed"],
            requests_failed=c["failed"],
            requests_cancelled=c["cancelled"],
            prompt_tokens=c["prompt"],
            completion_tokens=c["completion"],
            prefills=c["prefills"],
            decode_steps=c["steps"],
            cache=self.adapters.cache.stats(),
        )

    def close(self, timeout: float | None = None) -> None:
        """Stop the engine; requests not finished get `EngineClosedError`."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the scheduler thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._rows and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
            admitted: list[Job] = []
            try:
                with torch.inference_mode():
                    self.adapters.drop_evicted()
                    admitted = self._admit()
                    if admitted:
                        self._prefill(admitted)
                    elif self._rows:
                        self._decode()
                    else:  # nothing could be admitted (e.g. the cache is momentarily full)
                        with self._cond:
                            self._cond.wait(0.01)
                    self._retire()
            except Exception as err:  # a bug or out of memory: fail what is in flight, keep serving
                self._fail_rows(err, admitted)
        self._fail_rows(EngineClosedError("the engine was closed"))
        with self._cond:
            queued, self._queue = list(self._queue), deque()
        for job in queued:
            job.fail(EngineClosedError("the engine was closed"))

    def _admit(self) -> list[Job]:
        if self._state is not None and not can_join(self._state):
            return []  # this model's cache cannot take newcomers mid-flight
        admitted: list[Job] = []
        free = self.max_batch_size - len(self._rows)
        while True:
            with self._cond:
                if not self._queue or self._queue[0].request.n > free:
                    break
                job = self._queue.popleft()
            if job.cancelled():
                job.finish_cancelled()
                self._count("cancelled")
                continue
            try:
                self._pin(job)
            except CacheFullError as err:
                if not self._rows and not admitted:  # nothing in flight will release a pin
                    job.fail(err)
                    self._count("failed")
                    continue
                with self._cond:
                    self._queue.appendleft(job)  # retried when a batch has released its adapters
                break
            except Exception as err:
                self._unpin(job)
                job.fail(err)
                self._count("failed")
                continue
            admitted.append(job)
            free -= job.request.n
        return admitted

    def _pin(self, job: Job) -> None:
        key = job.request.adapter_key
        if key is None:
            job.slot = BASE
            return
        job.slot = self.adapters.acquire(key)
        job.pinned = True
        routed = self.adapters.table.routed_modules(job.slot)
        routing = job.request.return_routing
        if routing is not None and routing != "all" and routing not in routed:
            raise ValueError(f"return_routing: adapter {key.adapter_id!r} routes no tokens in {routing!r}")
        job.trace = set(routed) if routing == "all" else ({routing} if routing else None)

    def _prefill(self, jobs: list[Job]) -> None:
        rows = [row for job in jobs for row in job.start_rows(self.tokenizer, self.loaded.device)]
        binding = self.runner.bind([r.job.slot for r in rows], [r.job.slot for r in self._rows], _trace(rows))
        logits, state = self.runner.prefill([r.job.prompt_ids for r in rows])
        self._count("prefills")
        tokens = sample_next(
            logits, [r.temperature for r in rows], [r.top_p for r in rows], [r.generator for r in rows]
        )
        now = time.perf_counter()
        for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            row.job.first_token_at = row.job.first_token_at or now
            row.advance(token, binding.routing(i) if row.trace is not None else None, self.eos_ids)
        state.last = torch.tensor(tokens, device=self.loaded.device)
        self._state = state if self._state is None else join(self._state, state)
        self._rows += rows

    def _decode(self) -> None:
        assert self._state is not None
        binding = self.runner.bind([r.job.slot for r in self._rows], (), _trace(self._rows))
        logits = self.runner.decode(self._state)
        self._count("steps")
        rows = self._rows
        tokens = sample_next(
            logits, [r.temperature for r in rows], [r.top_p for r in rows], [r.generator for r in rows]
        )
        for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            row.advance(token, binding.routing(i) if row.trace is not None else None, self.eos_ids)
        self._state.last = torch.tensor(tokens, device=self.loaded.device)

    def _retire(self) -> None:
        for row in self._rows:
            if row.finish_reason is None and row.job.cancelled():
                row.cancel()
        keep = [i for i, r in enumerate(self._rows) if r.finish_reason is None]
        if len(keep) == len(self._rows):
            return
        done = [r for r in self._rows if r.finish_reason is not None]
        self._rows = [self._rows[i] for i in keep]
        self._state = select(self._state, keep) if keep and self._state is not None else None
        for job in {id(r.job): r.job for r in done}.values():
            if job.done():
                self._complete(job)

    def _complete(self, job: Job) -> None:
        result = job.result()
        self._unpin(job)
        with self._cond:
            self._counts["prompt"] += result.usage.prompt_tokens
            self._counts["completion"] += result.usage.completion_tokens
            cancelled = any(c.finish_reason == "cancelled" for c in result.choices)
            self._counts["cancelled" if cancelled else "completed"] += 1
        job.deliver(result)

    def _fail_rows(self, err: BaseException, admitted: Sequence[Job] = ()) -> None:
        """Fail every job in flight, and `admitted` ones whose rows may not have joined yet."""
        jobs = {id(j): j for j in [*(r.job for r in self._rows), *admitted]}.values()
        self._rows, self._state = [], None
        self.runner.unbind()
        for job in jobs:
            self._unpin(job)
            job.fail(err)
            self._count("failed")

    def _unpin(self, job: Job) -> None:
        if job.pinned and job.request.adapter_key is not None:
            self.adapters.release(job.request.adapter_key)
        job.pinned = False

    def _count(self, name: str) -> None:
        with self._cond:
            self._counts[name] += 1


def _trace(rows: Sequence[Row]) -> set[str] | None:
    names = set().union(*(r.trace for r in rows if r.trace))
    return names or None
