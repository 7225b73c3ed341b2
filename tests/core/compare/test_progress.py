"""The sweep's progress display: in-place on a terminal, throttled plain lines otherwise, sweep ETA."""

from __future__ import annotations

import io

from core.compare import SweepProgress
from core.compare.progress import format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_run_boundaries_and_at_most_one_per_interval_in_between() -> None:
    out, clock = io.StringIO(), Clock()
    progress = SweepProgress(2, 20, stream=out, interactive=False, interval=30.0, clock=clock)
    progress.start("classic", 1, 10)
    for step in range(1, 11):
        clock.now += 10.0
        progress.step(step, 10, 1.0 / step)
    progress.finish("succeeded")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "[run 1/2 | step 0/20 | ETA --] classic seed 1: starting"
    assert len(lines) == 2 + 3  # start, finish, and steps 3, 6, 9 (every 30 s of the 10 s steps)
    assert lines[1].startswith("[run 1/2 | step 3/20 | ETA 2m50s] classic seed 1: step 3/10 loss 0.3333")
    assert lines[-1] == "[run 1/2 | step 10/20 | ETA 1m40s] classic seed 1: succeeded"


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    progress = SweepProgress(1, 2, stream=out, interactive=True, clock=clock)
    progress.start("v", 3, 2)
    clock.now = 4.0
    progress.step(1, 2, 0.5)
    progress.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("\n")
    assert "[run 1/1 | step 1/2 | ETA 4s] v seed 3: step 1/2 loss 0.5000" in text


def test_eta_uses_this_sessions_pace_only_and_the_trainers_step_count() -> None:
    clock = Clock()
    progress = SweepProgress(3, 30, stream=io.StringIO(), interactive=False, clock=clock)
    progress.skip("a", 1, 10, "done earlier, reused")
    assert progress.eta_seconds() is None and progress.steps_done == 10
    progress.start("b", 1, 10, done=4)
    clock.now = 12.0
    progress.step(5, 10, 1.0)
    progress.step(6, 10, 1.0)
    assert progress.eta_seconds() == 6.0 * (30 - 16)
    progress.step(7, 12, 1.0)  # the trainer counted 12 steps where 10 were estimated
    assert progress.total_steps == 32
    progress.finish("FAILED")  # its remaining steps will not run
    assert progress.steps_done == 22 and progress.runs_done == 2


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 5, 65, 3725)] == ["--", "5s", "1m05s", "1h02m"]
