"""Deterministic, resumable data order."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from core.data import ResumableBatchSampler, epoch_order


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    order = epoch_order(50, seed=1234, epoch=0)
    assert sorted(order) == list(range(50))
    assert order == epoch_order(50, seed=1234, epoch=0)
    assert order != epoch_order(50, seed=1234, epoch=1)
    assert order != epoch_order(50, seed=99, epoch=0)


def test_sampler_batches_follow_the_epoch_order() -> None:
    sampler = ResumableBatchSampler(10, batch_size=4, seed=7, epoch=2)
    batches = list(sampler)
    assert [len(b) for b in batches] == [4, 4, 2] and len(sampler) == 3
    assert [i for b in batches for i in b] == epoch_order(10, seed=7, epoch=2)


def test_sampler_drop_last_omits_the_short_batch() -> None:
    sampler = ResumableBatchSampler(10, batch_size=4, seed=7, drop_last=True)
    assert [len(b) for b in sampler] == [4, 4] and len(sampler) == 2


def test_resuming_mid_epoch_replays_the_rest_of_the_epoch_and_later_epochs() -> None:
    sampler = ResumableBatchSampler(23, batch_size=4, seed=3)
    full_run = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        full_run += [(epoch, b) for b in sampler]
    resumed = ResumableBatchSampler(23, batch_size=4, seed=3, epoch=1, position=8)
    resumed_run = [(1, b) for b in resumed]
    resumed.set_epoch(2)
    resumed_run += [(2, b) for b in resumed]
    interrupted_after = len(list(ResumableBatchSampler(23, 4, seed=3))) + 2  # epoch 0 and two batches of 1
    assert resumed_run == full_run[interrupted_after:]


def test_sampler_works_as_a_dataloader_batch_sampler() -> None:
    sampler = ResumableBatchSampler(6, batch_size=3, seed=0)
    loader: DataLoader[int] = DataLoader(list(range(100, 106)), batch_sampler=sampler)  # type: ignore[arg-type]  # a list is a valid map-style dataset
    values = [int(v) for batch in loader for v in batch]
    assert values == [100 + i for i in epoch_order(6, seed=0, epoch=0)]


def test_sampler_rejects_a_position_outside_the_epoch() -> None:
    with pytest.raises(ValueError, match="position"):
        ResumableBatchSampler(5, batch_size=2, seed=0, position=6)
