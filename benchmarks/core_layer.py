"""Layer forward+backward: the fused MoE-LoRA layer against its floor and the authors' loop.

E=20, k=10, r=4, d_in=d_out=2048, 2048 tokens, dropout 0.05, gate_rescaled (p = 0.5).
- floor: one LoRA of rank E*r, the same expert FLOPs without routing (target <= 1.3x);
- the authors' formulation: a Python loop over experts, dropout per expert, and the
  detached-copy trick `sqrt(g).detach()*e + (g - sqrt(g).detach())*e.detach()` (target >= 7x).
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import Row, device, median_time
from core import MoELoRAConfig
from core.layers import MoELoRALayer

E, K, R, D, T, DROPOUT = 20, 10, 4, 2048, 2048, 0.05


class AuthorsLoop(nn.Module):
    """The per-expert loop of the reference implementation, for comparison only."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.router = nn.Linear(D, E, bias=False)
        self.lora_A = nn.ModuleList(nn.Linear(D, R, bias=False) for _ in range(E))
        self.lora_B = nn.ModuleList(nn.Linear(R, D, bias=False) for _ in range(E))
        self.dropout = nn.ModuleList(nn.Dropout(DROPOUT) for _ in range(E))
        self.scaling = 16 / R

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)
        probs = torch.softmax(self.router(x), dim=-1)
        top, idx = probs.topk(K, dim=-1)
        weights = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
        for i in range(E):
            expert_out = self.lora_B[i](self.lora_A[i](self.dropout[i](x))) * self.scaling
            w = weights[:, i : i + 1]
            sqrt_w = w.sqrt()
            result = result + sqrt_w.detach() * expert_out + (w - sqrt_w.detach()) * expert_out.detach()
        return result


class SingleLoRA(nn.Module):
    """One LoRA of rank E*r: the dense form's floor."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.randn(E * R, D) * D**-0.5)
        self.lora_B = nn.Parameter(torch.randn(D, E * R) * 0.01)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * (16 / R)


def step_fn(module: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    def step() -> None:
        out = module(x)
        out.backward(grad)
        for p in module.parameters():
            p.grad = None

    return step


def run(quick: bool = False) -> list[Row]:
    dev = device()
    torch.manual_seed(0)
    base = nn.Linear(D, D).to(dev).requires_grad_(False)
    x = torch.randn(T, D, device=dev, requires_grad=True)
    grad = torch.randn(T, D, device=dev)
    ours = MoELoRALayer(base, MoELoRAConfig(num_experts=E, top_k=K, rank=R, dropout=DROPOUT)).to(dev).train()
    with torch.no_grad():
        ours.lora_B.normal_(std=0.01)
    ours.track_routing = True
    floor = SingleLoRA(base).to(dev).train()
    authors = AuthorsLoop(base).to(dev).train()
    repeats = 3 if quick else 7
    t_ours = median_time(step_fn(ours, x, grad), repeats)
    t_floor = median_time(step_fn(floor, x, grad), repeats)
    t_authors = median_time(step_fn(authors, x, grad), max(2, repeats // 2), warmup=1)
    t_base = median_time(step_fn(base, x, grad), repeats)
    shape = f"E={E} k={K} r={R} d={D} T={T}"
    return [
        Row(f"layer fwd+bwd, {shape}", t_ours * 1e3, t_floor * 1e3, "ms", "LoRA rank E*r", "<= 1.3x"),
        Row(
            f"layer fwd+bwd, {shape}",
            t_ours * 1e3,
            t_authors * 1e3,
            "ms",
            "authors' expert loop",
            ">= 7x",
            ratio_of="baseline/ours",
        ),
        # The frozen base GEMM runs in both: authors/base is the most any dense form could reach.
        Row(
            "bound: authors' loop vs base GEMM alone",
            t_base * 1e3,
            t_authors * 1e3,
            "ms",
            "authors' expert loop",
            "",
            ratio_of="baseline/ours",
        ),
    ]
