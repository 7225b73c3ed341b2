"""Routing statistics, accumulated on the device during training forwards.

Nothing here synchronises with the device: counts stay tensors until `snapshot()` is read
at logging time, so the training loop never waits on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RoutingSnapshot:
    """Statistics of one layer since the last reset."""

    tokens: int
    expert_load: list[float]  # fraction of routed slots per expert, sums to 1
    router_entropy: float  # mean entropy (nats) of the full softmax p over the E experts
    gate_entropy: float  # mean entropy (nats) of the renormalised gates g over the chosen experts
    dead_experts: int  # experts that received no token

    def to_dict(self) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "expert_load": self.expert_load,
            "router_entropy": self.router_entropy,
            "gate_entropy": self.gate_entropy,
            "dead_experts": self.dead_experts,
        }


class RoutingStats:
    """Running sums for one MoE-LoRA layer."""

    def __init__(self, num_experts: int) -> None:
        self.num_experts = num_experts
        self._load: Tensor | None = None  # [E] routed-slot counts
        self._sums: Tensor | None = None  # [3]: tokens, sum of router entropy, sum of gate entropy

    @torch.no_grad()
    def update(self, p: Tensor, g: Tensor, mask: Tensor | None) -> None:
        """p, g: [T, E] float32; mask: [T] bool or None."""
        if mask is not None:
            p, g = p[mask], g[mask]
        if self._load is None or self._sums is None or self._load.device != p.device:
            self._load = torch.zeros(self.num_experts, dtype=torch.float64, device=p.device)
            self._sums = torch.zeros(3, dtype=torch.float64, device=p.device)
        # xlogy gives 0 * log 0 = 0 for experts off the top-k.
        h_p = -torch.special.xlogy(p, p).sum(-1)  # [T]
        h_g = -torch.special.xlogy(g, g).sum(-1)  # [T]
        self._load += (g > 0).sum(0)
        self._sums += torch.stack([h_p.new_tensor(p.shape[0]), h_p.sum(), h_g.sum()]).to(torch.float64)

    def reset(self) -> None:
        self._load = self._sums = None

    def snapshot(self) -> RoutingSnapshot | None:
        """Read the sums (one device sync); None if nothing was routed since the last reset."""
        if self._load is None or self._sums is None:
            return None
        load = self._load.cpu()
        tokens, h_p, h_g = self._sums.cpu().tolist()
        if tokens == 0:
            return None
        total = float(load.sum())
        return RoutingSnapshot(
            tokens=int(tokens),
            expert_load=(load / total).tolist(),
            router_entropy=h_p / tokens,
            gate_entropy=h_g / tokens,
            dead_experts=int((load == 0).sum()),
        )
