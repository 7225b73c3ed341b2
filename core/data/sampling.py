"""Deterministic, resumable data order.

The order of epoch ``e`` is a permutation drawn from a ``torch.Generator`` seeded with ``seed + e``:
it depends on nothing else (not on the global RNG, the number of workers or what ran before), so a
run resumed at ``(epoch, position)`` replays exactly the examples the interrupted run had not seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The permutation of ``range(num_examples)`` used in ``epoch``."""
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


class ResumableBatchSampler(Sampler[list[int]]):
    """Batches of indices for one epoch at a time, starting anywhere in the epoch.

    ``position`` counts the examples of the epoch already consumed, so a run that trained on
    ``k`` batches resumes with ``set_epoch(epoch, k * batch_size)``. Use as a DataLoader's
    ``batch_sampler``; call :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        *,
        epoch: int = 0,
        position: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0
        self.set_epoch(epoch, position)

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        """Iterate over ``epoch`` next, skipping its first ``position`` examples."""
        if not 0 <= position <= self.num_examples:
            raise ValueError(f"position must be in [0, {self.num_examples}], got {position}")
        self.epoch = epoch
        self.position = position

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.num_examples, self.seed, self.epoch)[self.position :]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        remaining = self.num_examples - self.position
        if self.drop_last:
            return remaining // self.batch_size
        return -(-remaining // self.batch_size)
