"""Router normalisations: logits -> (router probabilities p, gates g).

method.md section 1 (Sun et al. 2025): `p = softmax(W_g x)`, keep the top-k, renormalise
to sum 1. Softmax over the top-k logits only (Mixtral) is the same function in exact
arithmetic (`exp(l_i) / sum_S exp(l_j) = p_i / sum_S p_j`), so it is not a separate option.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# (logits [T, E] float32, k) -> (p [T, E], g [T, E]); g is 0 off the chosen experts.
Gating = Callable[[Tensor, int], tuple[Tensor, Tensor]]


def topk_renormalised(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The paper's router: softmax over all experts, top-k, renormalised."""
    p = torch.softmax(logits, dim=-1)  # [T, E]
    if k == p.shape[-1]:
        return p, p
    top, idx = p.topk(k, dim=-1)  # [T, k]
    g = torch.zeros_like(p).scatter(-1, idx, top / top.sum(dim=-1, keepdim=True))  # [T, E]
    return p, g


def dense(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Every expert weighted by its softmax probability (k is E)."""
    p = torch.softmax(logits, dim=-1)  # [T, E]
    return p, p


GATINGS: dict[str, Gating] = {"topk": topk_renormalised, "dense": dense}
