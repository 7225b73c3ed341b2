"""Learning-rate schedules and the step planner (which examples each step and rank train on)."""

from __future__ import annotations

import itertools

import pytest

from core.trainer.batches import StepPlanner
from core.trainer.schedule import lr_factor


def test_linear_schedule_warms_up_then_decays_to_the_floor() -> None:
    factors = [lr_factor(s, total=10, warmup=2, kind="linear", min_ratio=0.1) for s in range(11)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == pytest.approx(1.0) and factors[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[2:]))


def test_cosine_and_constant_schedules() -> None:
    assert lr_factor(5, total=10, warmup=0, kind="cosine", min_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(10, total=10, warmup=0, kind="cosine", min_ratio=0.2) == pytest.approx(0.2)
    assert lr_factor(7, total=10, warmup=0, kind="constant", min_ratio=0.0) == 1.0
    with pytest.raises(ValueError, match="^lr_scheduler"):
        lr_factor(1, total=10, warmup=0, kind="step", min_ratio=0.0)


def consume_epoch(planner: StepPlanner, epoch: int = 0) -> list[list[int]]:
    steps, position = [], 0
    while True:
        plan = planner.plan(epoch, position)
        if plan.epoch != epoch:
            return steps
        steps.append([i for micro in plan.micro_batches for i in micro])
        position = plan.next_position


def test_one_process_sees_every_example_once_per_epoch() -> None:
    planner = StepPlanner(10, seed=3, batch_size=3, accumulation=2, rank=0, world=1)
    steps = consume_epoch(planner)
    assert len(steps) == planner.steps_per_epoch() == 2
    assert sorted(i for s in steps for i in s) == list(range(10))


def test_ranks_split_each_global_batch_without_overlap() -> None:
    ranks = [
        consume_epoch(StepPlanner(11, seed=3, batch_size=2, accumulation=1, rank=r, world=2)) for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1])  # every rank takes part in every step
    seen = [i for steps in ranks for s in steps for i in s]
    assert len(seen) == len(set(seen)) == 10  # the odd example that cannot be sharded is dropped
    single = consume_epoch(StepPlanner(11, seed=3, batch_size=4, accumulation=1, rank=0, world=1))
    assert [sorted(a + b) for a, b in zip(*ranks, strict=True)][:2] == [sorted(s) for s in single][:2]


def test_epochs_have_different_orders_and_resume_replays_the_rest() -> None:
    planner = StepPlanner(8, seed=1, batch_size=2, accumulation=1, rank=0, world=1)
    assert consume_epoch(planner, 0) != consume_epoch(planner, 1)
    first = planner.plan(0, 0)
    again = StepPlanner(8, seed=1, batch_size=2, accumulation=1, rank=0, world=1).plan(0, first.next_position)
    assert again.micro_batches == [consume_epoch(planner, 0)[1]]
    rollover = planner.plan(0, 8)
    assert rollover.epoch == 1 and rollover.micro_batches == [consume_epoch(planner, 1)[0]]
