"""Memory of the gate-rescaled backward vs classic (target <= 1.05x).

Measured as the bytes autograd keeps from forward to backward (unique storages, through
`saved_tensors_hooks`), which is what differs between the formulations; on a GPU also the
allocator's peak over forward+backward. Same layer as `core_layer` (E=20, k=10, r=4, d=2048,
2048 tokens). Classic is ordinary autograd on the same dense expression; the authors'
detached-copy loop is shown for scale.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import Row, device
from benchmarks.core_layer import DROPOUT, AuthorsLoop, D, E, K, R, T
from core import MoELoRAConfig
from core.layers import MoELoRALayer


def classic_autograd(
    h: torch.Tensor, g: torch.Tensor, b_cat: torch.Tensor, scaling: float, p: float
) -> torch.Tensor:
    """The expand GEMM under plain autograd (p must be 1)."""
    num_tokens = h.shape[0]
    return (h * (g * scaling).to(h.dtype)[:, :, None]).reshape(num_tokens, -1) @ b_cat.T


def saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    out.sum().backward()
    return sum(storages.values())


def peak_bytes(module: nn.Module, x: torch.Tensor) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    module(x).sum().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def layer(p: float, dev: torch.device) -> MoELoRALayer:
    torch.manual_seed(0)
    base = nn.Linear(D, D).to(dev).requires_grad_(False)
    config = MoELoRAConfig(num_experts=E, top_k=K, rank=R, dropout=DROPOUT, gate_grad_exponent=p)
    return MoELoRALayer(base, config).to(dev).train()


def run(quick: bool = False) -> list[Row]:
    dev = device()
    x = torch.randn(T, D, device=dev, requires_grad=True)
    rescaled = saved_bytes(layer(0.5, dev), x)
    classic_layer = layer(1.0, dev)
    classic_layer.expand = classic_autograd
    classic = saved_bytes(classic_layer, x)
    authors = saved_bytes(AuthorsLoop(nn.Linear(D, D).to(dev).requires_grad_(False)).to(dev).train(), x)
    mib = 2**20
    rows = [
        Row(
            "saved for backward, gate_rescaled vs classic",
            rescaled / mib,
            classic / mib,
            "MiB",
            "classic autograd",
            "<= 1.05x",
        ),
        Row(
            "saved for backward, gate_rescaled vs authors",
            rescaled / mib,
            authors / mib,
            "MiB",
            "authors' detached copies",
            "",
        ),
    ]
    if dev.type == "cuda":
        rows.append(
            Row(
                "GPU peak fwd+bwd, gate_rescaled vs classic",
                peak_bytes(layer(0.5, dev), x) / mib,
                peak_bytes(classic_layer, x) / mib,
                "MiB",
                "classic autograd",
                "<= 1.05x",
            )
        )
    return rows
