"""A request in the engine (`Job`) and each of its choices being generated (`Row`).

The scheduler thread drives both: a row turns each sampled token into text (incremental
detokenization, then stop strings), decides when it is finished, and emits deltas through
its job's sink; the job collects the finished choices into the result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import torch

from core.inference.requests import (
    Choice,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    TokenDelta,
    TokenRouting,
    Usage,
)
from core.inference.sampling import make_generator
from core.inference.slots import BASE
from core.inference.text import IncrementalDecoder, StopMatcher

Sink = Callable[[TokenDelta | GenerationResult | BaseException], None]


class Job:
    """One submitted request: its prompt, where its output goes, and its cancellation."""

    def __init__(
        self,
        request: GenerationRequest,
        prompt_ids: list[int],
        sink: Sink,
        stream: bool,
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        self.request = request
        self.prompt_ids = prompt_ids
        self.stream = stream
        self.slot = BASE
        self.pinned = False  # holds a reference on its adapter in the cache
        self.trace: set[str] | None = None  # modules whose routing each token reports
        self.rows: list[Row] = []
        self.submitted_at = time.perf_counter()
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self._sink = sink
        self._should_cancel = cancel
        self._cancelled = threading.Event()
        self._closed = False

    def cancel(self) -> None:
        """Stop generating at the next step (safe from any thread)."""
        self._cancelled.set()

    def cancelled(self) -> bool:
        if not self._cancelled.is_set() and self._should_cancel is not None:
            try:
                if self._should_cancel():
                    self._cancelled.set()
            except Exception:  # a failing disconnect probe means the client is gone
                self._cancelled.set()
        return self._cancelled.is_set()

    def start_rows(self, tokenizer: Any, device: torch.device) -> list[Row]:
        """The job's n choices, ready to prefill."""
        self.started_at = time.perf_counter()
        r = self.request
        self.rows = [
            Row(self, i, make_generator(r.seed, i, device) if r.temperature > 0 else None, tokenizer)
            for i in range(r.n)
        ]
        return self.rows

    def done(self) -> bool:
        return all(row.finish_reason is not None for row in self.rows)

    def result(self) -> GenerationResult:
        choices = [row.choice() for row in self.rows] or [
            Choice(i, "", [], "cancelled", [] if self.request.return_routing else None)
            for i in range(self.request.n)
        ]
        now = time.perf_counter()
        extra = {"total_s": now - self.submitted_at}
        if self.started_at is not None:
            extra["queue_s"] = self.started_at - self.submitted_at
        if self.first_token_at is not None:
            extra["first_token_s"] = self.first_token_at - self.submitted_at
        usage = Usage(len(self.prompt_ids) if self.rows else 0, sum(len(c.token_ids) for c in choices))
        return GenerationResult(choices, usage, self.request.adapter_key, extra)

    def emit(self, delta: TokenDelta) -> None:
        if self.stream:
            self._send(delta)

    def deliver(self, result: GenerationResult) -> None:
        self._send(result)
        self._closed = True

    def finish_cancelled(self) -> None:
        """Cancelled while still queued."""
        self.deliver(self.result())

    def fail(self, err: BaseException) -> None:
        if not self._closed:
            self._send(err)
            self._closed = True

    def _send(self, item: TokenDelta | GenerationResult | BaseException) -> None:
        try:
            self._sink(item)
        except Exception:  # the consumer is gone (e.g. its event loop closed): stop generating
            self._cancelled.set()


class Row:
    """One choice of a job being generated."""

    def __init__(self, job: Job, index: int, generator: torch.Generator | None, tokenizer: Any) -> None:
        self.job = job
        self.index = index
        self.generator = generator
        self.temperature = job.request.temperature
        self.top_p = job.request.top_p
        self.trace = job.trace
        self.tokens: list[int] = []
        self.routing: list[TokenRouting] | None = [] if job.trace is not None else None
        self.finish_reason: FinishReason | None = None
        self._decoder = IncrementalDecoder(tokenizer)
        self._stops = StopMatcher(job.request.stop)

    def advance(self, token: int, routing: TokenRouting | None, eos_ids: Collection[int]) -> None:
        """Take the sampled `token`: text, stop strings, EOS and max_tokens; emit the delta."""
        self.tokens.append(token)
        if self.routing is not None and routing is not None:
            self.routing.append(routing)
        finish: FinishReason | None = None
        if token in eos_ids:
            text, stopped = self._stops.push(self._decoder.flush())
            text += "" if stopped else self._stops.flush()
            finish = "stop"
        else:
            text, stopped = self._stops.push(self._decoder.push(token))
            if stopped:
                finish = "stop"
            elif len(self.tokens) >= self.job.request.max_tokens:
                more, stopped = self._stops.push(self._decoder.flush())
                text += more + ("" if stopped else self._stops.flush())
                finish = "stop" if stopped else "length"
        self.finish_reason = finish
        self.job.emit(TokenDelta(self.index, text, [token], finish, routing))

    def cancel(self) -> None:
        self.finish_reason = "cancelled"
        self.job.emit(TokenDelta(self.index, "", [], "cancelled"))

    def choice(self) -> Choice:
        assert self.finish_reason is not None
        return Choice(self.index, self._stops.text, list(self.tokens), self.finish_reason, self.routing)
