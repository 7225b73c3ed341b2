"""`create_optimizer`: torch's SGD/AdamW with per-expert Riemannian preconditioning.

Three parameter groups: the experts' factors (preconditioned, method.md section 3), the
routers (never preconditioned; own learning rate, optional gradient-norm clipping, as the
paper's separate router optimizer), and any other trainable parameter. The base optimizer
is torch's own class, subclassed so that `step()` preconditions `.grad` first, as PEFT's
`create_riemannian_optimizer` does for a single LoRA: schedulers, `state_dict()` and
`zero_grad()` behave as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import SGD, AdamW, Optimizer

from core.inject import moe_lora_layers
from core.optim.adamw import AdamWNoBiasCorrection
from core.optim.preconditioner import ExpertPair, RiemannianPreconditioner

OPTIMIZERS = ("sgd", "adamw")
PRECONDITIONERS = ("none", "riemannian")


class MoEOptimizerMixin(Optimizer):
    """What `create_optimizer` adds to a torch optimizer: preconditioning, router clipping, statistics."""

    preconditioner: RiemannianPreconditioner | None
    router_params: list[torch.Tensor]
    router_max_grad_norm: float | None
    last_router_grad_norm: torch.Tensor | None

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]  # torch's overloads
        if closure is not None:
            # A closure re-runs backward inside step() and would overwrite the preconditioned grads.
            raise ValueError("closure: not supported with a preconditioned optimizer")
        if self.router_max_grad_norm is not None and self.router_params:
            self.last_router_grad_norm = nn.utils.clip_grad_norm_(
                self.router_params, self.router_max_grad_norm
            )
        if self.preconditioner is not None:
            self.preconditioner.step()
        return super().step()

    def statistics(self) -> dict[str, Any]:
        """Per-step statistics for the metrics (reads device values: call at logging time)."""
        out: dict[str, Any] = {"preconditioner": "riemannian" if self.preconditioner else "none"}
        if self.last_router_grad_norm is not None:
            out["router_grad_norm"] = float(self.last_router_grad_norm)
        if self.preconditioner is not None:
            stats = self.preconditioner.statistics()
            conds = [v for layer in stats.layers.values() for k, v in layer.items() if k.startswith("cond")]
            out.update(
                steps=stats.steps,
                solver_failures=stats.solver_failures,
                nonfinite=stats.nonfinite,
                last_solver_failures=stats.last_solver_failures,
                last_nonfinite=stats.last_nonfinite,
                cond_gram_max=max(conds) if conds else None,
                layers=stats.layers,
            )
        return out


_CLASSES: dict[type[Optimizer], type[MoEOptimizerMixin]] = {}


def _wrapped(base: type[Optimizer]) -> type[MoEOptimizerMixin]:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"MoE{base.__name__}", (MoEOptimizerMixin, base), {})
    return _CLASSES[base]


def create_optimizer(
    model: nn.Module,
    optimizer: str = "sgd",
    preconditioner: str = "riemannian",
    lr: float = 1e-4,
    router_lr: float | None = None,
    damping: float = 1e-6,
    weight_decay: float = 0.0,
    router_weight_decay: float = 0.0,
    router_max_grad_norm: float | None = None,
    momentum: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    bias_correction: bool = True,
) -> MoEOptimizerMixin:
    """Build the optimizer of a model carrying MoE-LoRA layers.

    Args:
        model: a model after `add_moe_lora`.
        optimizer: `sgd` (momentum optional) or `adamw`.
        preconditioner: `riemannian` (per expert, method.md section 3) or `none`.
        lr: learning rate of the experts (and of any other trainable parameter).
        router_lr: learning rate of the routers; defaults to `lr`.
        damping: lambda added to the [r, r] Gram matrices.
        weight_decay: of the experts (decoupled for AdamW).
        router_weight_decay: of the routers.
        router_max_grad_norm: clip the routers' joint gradient norm to this (None: no clipping).
        momentum: SGD momentum.
        betas, eps: AdamW's.
        bias_correction: AdamW's moment bias correction (the paper runs without it).

    Returns:
        A subclass of the torch optimizer, whose `statistics()` gives the per-step statistics.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(
            f"preconditioner: expected one of {', '.join(PRECONDITIONERS)}, got {preconditioner!r}"
        )
    for name, value in (
        ("lr", lr),
        ("router_lr", router_lr),
        ("damping", damping),
        ("weight_decay", weight_decay),
    ):
        if value is not None and not value >= 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
    if router_max_grad_norm is not None and not router_max_grad_norm > 0:
        raise ValueError(f"router_max_grad_norm: must be > 0, got {router_max_grad_norm}")

    pairs: list[ExpertPair] = []
    expert_params: list[torch.Tensor] = []
    router_params: list[torch.Tensor] = []
    for name, layer in moe_lora_layers(model):
        if layer.lora_A.requires_grad and layer.lora_B.requires_grad:
            pairs.append(ExpertPair(name, layer.lora_A, layer.lora_B))
        expert_params += [p for p in (layer.lora_A, layer.lora_B) if p.requires_grad]
        if layer.router is not None and layer.router.weight.requires_grad:
            router_params.append(layer.router.weight)
    if not pairs:
        raise ValueError("model: no trainable MoE-LoRA layer (call add_moe_lora first)")
    seen = {id(p) for p in expert_params + router_params}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]

    router_lr = lr if router_lr is None else router_lr
    groups: list[dict[str, Any]] = [
        {"params": expert_params, "lr": lr, "weight_decay": weight_decay, "name": "experts"},
        {"params": router_params, "lr": router_lr, "weight_decay": router_weight_decay, "name": "router"},
        {"params": others, "lr": lr, "weight_decay": weight_decay, "name": "other"},
    ]
    groups = [g for g in groups if g["params"]]
    base, kwargs = _base_optimizer(optimizer, momentum, betas, eps, bias_correction)
    opt = _wrapped(base)(groups, lr=lr, **kwargs)  # type: ignore[call-arg]  # the base class's signature
    opt.preconditioner = RiemannianPreconditioner(pairs, damping) if preconditioner == "riemannian" else None
    opt.router_params = router_params
    opt.router_max_grad_norm = router_max_grad_norm
    opt.last_router_grad_norm = None
    return opt


def _base_optimizer(
    name: str, momentum: float, betas: tuple[float, float], eps: float, bias_correction: bool
) -> tuple[type[Optimizer], dict[str, Any]]:
    if name == "sgd":
        return SGD, {"momentum": momentum}
    if bias_correction:
        return AdamW, {"betas": betas, "eps": eps}
    return AdamWNoBiasCorrection, {"betas": betas, "eps": eps}
