"""Learning-rate schedules: warmup, then linear or cosine decay to `min_lr_ratio`, or constant.

Every parameter group (experts, router) is scaled by the same factor, so the router keeps its
own learning rate relative to the experts'. The paper decays linearly to 0.1x.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, total: int, warmup: int, kind: str, min_ratio: float) -> float:
    """The multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"lr_scheduler: unknown schedule {kind!r}")
    return min_ratio + (1.0 - min_ratio) * decay


def build_scheduler(
    optimizer: Optimizer, kind: str, total_steps: int, warmup_ratio: float, min_ratio: float
) -> LambdaLR:
    warmup = math.ceil(warmup_ratio * total_steps)
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup, kind, min_ratio))
