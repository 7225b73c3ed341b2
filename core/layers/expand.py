"""The expand GEMM of MoE-LoRA with the gate-rescaled backward (Sun et al. 2025, section 4).

Forward (unchanged for every p), for T tokens, E experts of rank r:

    y = sum_i g_i * e_i,   e_i = s * B_i h_i,   h_i = A_i dropout(x)

computed as one GEMM over the experts' concatenated rank space. Backward:

    dL/de_i = g_i^p * dL/dy        (p = 1: ordinary autograd, "classic")
    dL/dg_i = <e_i, dL/dy>         (unchanged)

The paper writes this as `sqrt(g).detach() * e + (g - sqrt(g).detach()) * e.detach()`,
which keeps two [T, E, d_out] expert outputs alive. Here only the rank-space activations
h [T, E, r] (needed for dL/dB anyway) and the gates are saved: e_i is never materialised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

# (h [T, E, r], g [T, E], b_cat [d_out, E*r], scaling, p) -> y [T, d_out]
ExpandFn = Callable[[Tensor, Tensor, Tensor, float, float], Tensor]


def gate_power(g: Tensor, p: float) -> Tensor:
    """g^p with 0 where g == 0, also for p = 0 (where torch gives 0 ** 0 == 1)."""
    if p == 1.0:
        return g
    return torch.where(g > 0, g.pow(p), torch.zeros_like(g))


class GateRescaledExpand(torch.autograd.Function):
    """y = s * sum_i g_i B_i h_i, with the gradient into each expert scaled by g_i^p, not g_i."""

    @staticmethod
    def forward(h: Tensor, g: Tensor, b_cat: Tensor, scaling: float, p: float) -> Tensor:
        # h: [T, E, r]; g: [T, E]; b_cat: [d_out, E*r] (B_i side by side)
        num_tokens, num_experts, rank = h.shape
        m = (h * (g * scaling).to(h.dtype)[:, :, None]).reshape(num_tokens, num_experts * rank)  # [T, E*r]
        return m @ b_cat.T  # [T, d_out]

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Tensor) -> None:
        h, g, b_cat, scaling, p = inputs
        ctx.save_for_backward(h, g, b_cat)
        ctx.scaling, ctx.p = scaling, p  # type: ignore[attr-defined]  # ctx carries plain attributes

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        h, g, b_cat = ctx.saved_tensors
        num_tokens, num_experts, rank = h.shape
        scaling, p = ctx.scaling, ctx.p
        need_h, need_g, need_b = ctx.needs_input_grad[:3]
        dh = dg = db = None
        gp = (gate_power(g, p) * scaling).to(h.dtype)[:, :, None]  # [T, E, 1]
        if need_h or need_g:
            u = (dy @ b_cat).view(num_tokens, num_experts, rank)  # [T, E, r] = B_i^T dL/dy
            if need_h:
                dh = u * gp  # [T, E, r]
            if need_g:
                # <e_i, dL/dy> = s * <h_i, B_i^T dL/dy>; summed in float32 for the router's sake
                acc = torch.promote_types(h.dtype, torch.float32)
                dg = (h.to(acc) * u.to(acc)).sum(-1).mul_(scaling).to(g.dtype)  # [T, E]
        if need_b:
            db = dy.T @ (h * gp).reshape(num_tokens, num_experts * rank)  # [d_out, E*r]
        return dh, dg, db, None, None


def gate_rescaled_expand(h: Tensor, g: Tensor, b_cat: Tensor, scaling: float, p: float) -> Tensor:
    """Typed entry point of `GateRescaledExpand` (shapes as there)."""
    out: Tensor = GateRescaledExpand.apply(h, g, b_cat, scaling, p)
    return out
