"""Optimizer step over 112 modules x 20 experts (r=4, d=1024).

- ours: `create_optimizer(sgd, riemannian)`: batched Cholesky over all experts, batched solves;
- the authors' formulation: a Python loop over expert pairs with `torch.inverse` (target >= 5x);
- the plain SGD step on the same parameters, no preconditioning (target <= 10x on CPU).
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import Row, device, median_time
from core import MoELoRAConfig, create_optimizer
from core.layers import MoELoRALayer

MODULES, E, R, D, LR, DAMPING = 112, 20, 4, 1024, 1e-3, 1e-6


def build(dev: torch.device) -> nn.ModuleList:
    torch.manual_seed(0)
    config = MoELoRAConfig(num_experts=E, top_k=2, rank=R)
    layers = nn.ModuleList(
        MoELoRALayer(nn.Linear(D, D, bias=False, device=dev), config) for _ in range(MODULES)
    )
    for layer in layers:
        layer.base_layer.requires_grad_(False)
        with torch.no_grad():
            layer.lora_B.normal_(std=0.01)
        for p in (layer.lora_A, layer.lora_B, layer.router.weight):
            p.grad = torch.randn_like(p) * 1e-3
    return layers


def authors_step(layers: nn.ModuleList):
    """Per-expert `torch.inverse` preconditioning and an in-place SGD update, one pair at a time."""
    eye = torch.eye(R, device=layers[0].lora_A.device)

    @torch.no_grad()
    def step() -> None:
        for layer in layers:
            for i in range(E):
                a, b = layer.lora_A[i], layer.lora_B[i]
                scale_a = torch.inverse(b.T @ b + DAMPING * eye)
                scale_b = torch.inverse(a @ a.T + DAMPING * eye)
                grad_a = scale_a @ layer.lora_A.grad[i]
                grad_b = layer.lora_B.grad[i] @ scale_b
                a.add_(grad_a, alpha=-LR)
                b.add_(grad_b, alpha=-LR)
            layer.router.weight.add_(layer.router.weight.grad, alpha=-LR)

    return step


def run(quick: bool = False) -> list[Row]:
    dev = device()
    layers = build(dev)
    grads = {p: p.grad.clone() for p in layers.parameters() if p.grad is not None}

    def restoring(step):
        def fn() -> None:
            for p, g in grads.items():
                p.grad.copy_(g)
            step()

        return fn

    ours = create_optimizer(layers, "sgd", "riemannian", lr=LR, damping=DAMPING)
    plain = torch.optim.SGD([p for p in layers.parameters() if p.requires_grad], lr=LR)
    noop = restoring(lambda: None)
    repeats = 5 if quick else 11
    t_copy = median_time(noop, repeats)  # the grad restore, subtracted from every measurement
    t_ours = median_time(restoring(ours.step), repeats) - t_copy
    t_plain = median_time(restoring(plain.step), repeats) - t_copy
    t_authors = median_time(restoring(authors_step(layers)), max(2, repeats // 3), warmup=1) - t_copy
    shape = f"{MODULES} modules x {E} experts, r={R}, d={D}"
    return [
        Row(
            f"optimizer step, {shape}",
            t_ours * 1e3,
            t_authors * 1e3,
            "ms",
            "authors' torch.inverse loop",
            ">= 5x",
            ratio_of="baseline/ours",
        ),
        Row(f"optimizer step, {shape}", t_ours * 1e3, t_plain * 1e3, "ms", "plain SGD step", "<= 10x"),
    ]
