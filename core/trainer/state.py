"""Training checkpoints: adapter, optimizer, scheduler, RNG states and data position.

    <output_dir>/checkpoints/step-00000050/
        adapter/            save_adapter's directory (servable as is)
        trainer_state.pt    optimizer, scheduler, RNG states
        trainer_state.json  step, epoch, position, tokens seen (readable without torch)

Each checkpoint directory is written to a temp directory and renamed into place, so a crash
mid-write leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from core.adapters import WEIGHTS_NAME, save_adapter
from core.inject import moe_lora_layers

CHECKPOINTS = "checkpoints"
PREFIX = "step-"


@dataclass
class Position:
    """Where a run is: optimizer steps done, and the next example of the current epoch."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # examples of `epoch` already consumed (global, over all ranks)
    tokens_seen: int = 0


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CHECKPOINTS / f"{PREFIX}{step:08d}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    done = sorted(
        p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "trainer_state.json").exists()
    )
    return done[-1] if done else None


def save_checkpoint(
    output_dir: Path,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    pos: Position,
    base_model_name: str,
    metrics: dict[str, Any] | None = None,
) -> Path:
    target = checkpoint_dir(output_dir, pos.step)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_adapter(model, tmp / "adapter", base_model_name=base_model_name)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
            },
            tmp / "trainer_state.pt",
        )
        (tmp / "trainer_state.json").write_text(
            json.dumps({**asdict(pos), "metrics": metrics or {}}, indent=2)
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@torch.no_grad()
def load_checkpoint(path: Path, model: nn.Module, optimizer: Optimizer, scheduler: LRScheduler) -> Position:
    """Restore a run in place from `path`; returns its position."""
    from safetensors.torch import load_file

    from core.adapters import PREFIX as TENSOR_PREFIX

    tensors = load_file(str(path / "adapter" / WEIGHTS_NAME))
    for name, layer in moe_lora_layers(model):
        layer.lora_A.copy_(tensors[f"{TENSOR_PREFIX}{name}.lora_A.weight"].view(layer.lora_A.shape))
        layer.lora_B.copy_(tensors[f"{TENSOR_PREFIX}{name}.lora_B.weight"].view(layer.lora_B.shape))
        if layer.router is not None:
            layer.router.weight.copy_(tensors[f"{TENSOR_PREFIX}{name}.router.weight"])
    state = torch.load(
        path / "trainer_state.pt", weights_only=False
    )  # our own file: RNG states are not tensors only
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    info = json.loads((path / "trainer_state.json").read_text())
    return Position(info["step"], info["epoch"], info["position"], info["tokens_seen"])


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
