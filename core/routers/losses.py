"""Optional router regularisers, over non-padding tokens only.

- Load balancing (Switch Transformer, Fedus et al. 2021; Mixtral's top-k form):
  `E * sum_i f_i * P_i`, f_i the fraction of routed slots that go to expert i (sums to 1),
  P_i the mean router probability of expert i. Equals 1 for a perfectly uniform router.
- z-loss (ST-MoE, Zoph et al. 2022): `mean(logsumexp(logits)^2)`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def load_balancing_loss(p: Tensor, g: Tensor, mask: Tensor | None) -> Tensor:
    """p, g: [T, E]; mask: [T] bool or None."""
    num_experts = p.shape[-1]
    routed = (g > 0).to(p.dtype)  # [T, E], constant w.r.t. the router (as in Switch)
    if mask is not None:
        p, routed = p[mask], routed[mask]
    if p.shape[0] == 0:
        return p.new_zeros(())
    f = routed.sum(0) / routed.sum()  # [E]
    mean_p = p.mean(0)  # [E]
    return num_experts * (f * mean_p).sum()


def z_loss(logits: Tensor, mask: Tensor | None) -> Tensor:
    """logits: [T, E]; mask: [T] bool or None."""
    if mask is not None:
        logits = logits[mask]
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return torch.logsumexp(logits, dim=-1).square().mean()
