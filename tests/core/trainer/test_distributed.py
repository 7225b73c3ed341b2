"""Data parallelism: 2 CPU processes with gloo stay in sync and match one process on the global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from core.jobs import JobSpec
from core.trainer import train
from tests.core.trainer.conftest import job, write_examples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(rank: int, world: int, port: int, doc: dict, train_file: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = train(JobSpec.from_dict(doc), Path(train_file), Path(out), keep_model=True, device="cpu")
    state = {n: p.detach().clone() for n, p in result.model.named_parameters() if p.requires_grad}
    torch.save(state, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync_and_match_one_process(tiny_model_dir, tmp_path) -> None:
    train_file = write_examples(tmp_path / "train.jsonl", 16)
    doc = job(
        tiny_model_dir,
        hyperparameters={"max_steps": 4, "batch_size": 2, "gradient_accumulation_steps": 2},
        adapter={"dropout": 0.0},
        optimizer={"type": "sgd", "momentum": 0.9},
    )
    out = tmp_path / "ddp"
    mp.spawn(worker, args=(2, free_port(), doc, str(train_file), str(out)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert (out / "adapter" / "adapter_model.safetensors").exists()  # rank 0 wrote the outputs
    single_doc = job(
        tiny_model_dir,
        hyperparameters={"max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 2},
        adapter={"dropout": 0.0},
        optimizer={"type": "sgd", "momentum": 0.9},
    )
    single = train(
        JobSpec.from_dict(single_doc), train_file, tmp_path / "single", keep_model=True, device="cpu"
    )
    for name, param in single.model.named_parameters():
        if param.requires_grad:
            # the same sums in another order (SGD: AdamW's normalisation would amplify that noise near 0)
            torch.testing.assert_close(rank0[name], param.detach(), rtol=1e-4, atol=1e-5)
