"""Which examples each optimizer step trains on, on each rank.

The epoch order is `core.data.epoch_order(N, seed, epoch)`: a function of the seed and the
epoch only, so a run resumed at (epoch, position) replays exactly what the interrupted run
had left. A global micro-batch holds `batch_size * world_size` consecutive examples of the
order; rank r takes every world_size-th of them. A step takes `gradient_accumulation_steps`
micro-batches and never crosses an epoch boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.data.sampling import epoch_order


@dataclass
class StepPlan:
    micro_batches: list[list[int]]  # this rank's example indices, one list per micro-batch
    epoch: int  # the epoch these examples come from
    next_position: int  # position in `epoch` after this step
    examples: int  # global examples consumed by this step


class StepPlanner:
    """Plans optimizer steps over a dataset of `num_examples`, with a cached epoch order."""

    def __init__(
        self, num_examples: int, seed: int, batch_size: int, accumulation: int, rank: int, world: int
    ) -> None:
        self.num_examples, self.seed = num_examples, seed
        self.batch_size, self.accumulation = batch_size, accumulation
        self.rank, self.world = rank, world
        self._order: tuple[int, list[int]] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    def usable(self) -> int:
        """Examples of an epoch that train: a tail shorter than world_size is dropped (it cannot be sharded)."""
        tail = self.num_examples % self.global_batch
        return self.num_examples - (tail % self.world if tail else 0)

    def steps_per_epoch(self) -> int:
        micro = -(-self.usable() // self.global_batch)
        return -(-micro // self.accumulation)

    def plan(self, epoch: int, position: int) -> StepPlan:
        """The next step from (epoch, position); rolls over to the next epoch when this one is done."""
        if position >= self.usable():
            epoch, position = epoch + 1, 0
        order = self._epoch(epoch)
        micro: list[list[int]] = []
        start = position
        while len(micro) < self.accumulation and start < self.usable():
            chunk = order[start : min(start + self.global_batch, self.usable())]
            micro.append(chunk[self.rank :: self.world])
            start += len(chunk)
        return StepPlan(micro, epoch, start, start - position)

    def _epoch(self, epoch: int) -> list[int]:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.num_examples, self.seed, epoch))
        return self._order[1]
