"""One progress display for a whole sweep: which run, its step, and the sweep's ETA, on stderr.

On a terminal the line is rewritten in place; otherwise (a log file, CI) plain lines are
printed: one when a run starts or ends, and at most one per `interval` seconds in between.
The ETA is the wall time per step measured in this session (model loading and evaluation
included) times the steps left; runs reused from an earlier session do not count.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class SweepProgress:
    """Tracks `total_runs` runs of known or estimated step counts and prints their progress."""

    def __init__(
        self,
        total_runs: int,
        total_steps: int,
        *,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.total_runs, self.total_steps = total_runs, total_steps
        self.interval, self.clock = interval, clock
        self.runs_done = self.steps_done = 0
        self._session_steps = 0
        self._started: float | None = None
        self._last_print = -float("inf")
        self._run: tuple[str, int, int] | None = None  # variant, seed, run steps
        self._run_step = 0
        self._dirty = False

    def skip(self, variant: str, seed: int, steps: int, why: str) -> None:
        """A run that needs no training (done, or failed earlier)."""
        self.runs_done += 1
        self.steps_done += steps
        self._line(f"{variant} seed {seed}: {why}", force=True, final=True)

    def start(self, variant: str, seed: int, steps: int, done: int = 0) -> None:
        """A run begins (or resumes after `done` steps)."""
        if self._started is None:
            self._started = self.clock()
        self._run, self._run_step = (variant, seed, steps), done
        self.steps_done += done
        self._line(
            f"{variant} seed {seed}: " + ("starting" if not done else f"resuming at step {done}"), force=True
        )

    def step(self, step: int, total: int, loss: float) -> None:
        """The current run finished optimizer step `step` of `total`."""
        if self._run is None:
            return
        variant, seed, planned = self._run
        if total != planned:  # the estimate was off: the trainer knows the real count
            self.total_steps += total - planned
            self._run = (variant, seed, total)
        advanced = max(step - self._run_step, 0)
        self._run_step = step
        self.steps_done += advanced
        self._session_steps += advanced
        self._line(f"{variant} seed {seed}: step {step}/{total} loss {loss:.4f}")

    def phase(self, message: str) -> None:
        """Work outside the runs (evaluating the base model, writing the report)."""
        if self._started is None:
            self._started = self.clock()
        self._line(message, force=True)

    def finish(self, status: str) -> None:
        """The current run ended with `status`."""
        if self._run is None:
            return
        variant, seed, planned = self._run
        self.steps_done += max(planned - self._run_step, 0)  # a failed run's remaining steps will not run
        self.runs_done += 1
        self._run = None
        self._line(f"{variant} seed {seed}: {status}", force=True, final=True)

    def close(self) -> None:
        if self.interactive and self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False

    def eta_seconds(self) -> float | None:
        """Seconds left for the sweep at this session's pace, None before the first step."""
        if self._started is None or self._session_steps == 0:
            return None
        per_step = (self.clock() - self._started) / self._session_steps
        return per_step * max(self.total_steps - self.steps_done, 0)

    def status_line(self, message: str) -> str:
        eta = self.eta_seconds()
        run_no = min(self.runs_done + (self._run is not None), self.total_runs)
        return (
            f"[run {run_no}/{self.total_runs} | step {self.steps_done}/{self.total_steps} | "
            f"ETA {format_duration(eta)}] {message}"
        )

    def _line(self, message: str, force: bool = False, final: bool = False) -> None:
        now = self.clock()
        text = self.status_line(message)
        if self.interactive:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._dirty = not final
        elif force or now - self._last_print >= self.interval:
            self.stream.write(text + "\n")
        else:
            return
        self._last_print = now
        self.stream.flush()


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `4m05s`, `12s`; `--` when unknown."""
    if seconds is None:
        return "--"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
