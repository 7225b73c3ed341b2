"""The MoE-LoRA layer (Sun et al., ICML 2025; method.md section 1), vectorised over experts.

For one token x, with E experts of rank r, scaling s = alpha / r:

    p = softmax(W_g x);  g = top-k of p, renormalised;  y = W0 x + s * sum_i g_i B_i A_i dropout(x)

Experts are stacked (`lora_A` [E, r, d_in], `lora_B` [E, d_out, r]) and computed as two
GEMMs over the concatenated rank space E*r: no Python loop over experts, no data-dependent
shapes (safe with activation checkpointing, torch.compile and CUDA graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D  # GPT-2's projections: weight [d_in, d_out]

from core.config import MoELoRAConfig
from core.layers.expand import ExpandFn, gate_rescaled_expand
from core.routers import GATINGS, RoutingStats, load_balancing_loss, z_loss


def in_out_features(base: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of an `nn.Linear` or a transformers `Conv1D`."""
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, Conv1D):
        d_in, d_out = base.weight.shape
        return int(d_in), int(d_out)
    raise TypeError(f"MoE-LoRA wraps nn.Linear or Conv1D modules, got {type(base).__name__}")


@dataclass
class TokenMaskContext:
    """The attention mask of the current model call, shared by the layers of one model.

    Set by a forward pre-hook on the model (see `core.inject`); the layers use it to leave
    padding out of the routing statistics and the router regularisers.
    """

    attention_mask: Tensor | None = None

    def token_mask(self, batch_shape: torch.Size) -> Tensor | None:
        """[T] bool mask for an input of leading shape (B, L), or None if it does not apply."""
        mask = self.attention_mask
        if mask is None or mask.dim() != 2 or len(batch_shape) != 2:
            return None
        batch, length = batch_shape
        if mask.shape[0] != batch or mask.shape[1] < length:
            return None
        # With a KV cache the mask spans past + current tokens; the layer sees the current ones.
        return mask[:, -length:].reshape(-1).bool()


class MoELoRALayer(nn.Module):
    """A frozen `nn.Linear`/`Conv1D` plus E routed LoRA experts."""

    def __init__(self, base_layer: nn.Module, config: MoELoRAConfig) -> None:
        super().__init__()
        d_in, d_out = in_out_features(base_layer)
        assert config.num_experts is not None and config.top_k is not None  # resolved by the config
        self.base_layer = base_layer
        self.in_features, self.out_features = d_in, d_out
        self.num_experts, self.top_k, self.rank = config.num_experts, config.top_k, config.rank
        self.scaling = config.scaling
        self.gate_grad_exponent = config.gate_grad_exponent
        self.router_normalization = config.router_normalization
        self.load_balancing_coef, self.z_loss_coef = config.load_balancing_coef, config.z_loss_coef
        weight = base_layer.weight
        assert isinstance(weight, Tensor)
        # Adapter weights take the base weight's dtype: a bf16 model trains bf16 experts
        # (the optimizer does its linear algebra in float32 and casts back).
        dtype, device = weight.dtype, weight.device
        self.lora_A = nn.Parameter(torch.empty(self.num_experts, self.rank, d_in, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(
            torch.zeros(self.num_experts, d_out, self.rank, dtype=dtype, device=device)
        )
        self.router: nn.Linear | None = (
            nn.Linear(d_in, self.num_experts, bias=False, dtype=dtype, device=device)
            if config.has_router
            else None
        )
        self.lora_dropout: nn.Module = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        # The expand GEMM and its backward; swappable (e.g. for plain autograd in the benchmarks).
        self.expand: ExpandFn = gate_rescaled_expand
        self.routing_stats = RoutingStats(self.num_experts)
        self.track_routing = True
        self.mask_context: TokenMaskContext | None = None
        self.aux_loss: Tensor | None = None
        self.aux_values: dict[str, Tensor] = {}
        self.reset_lora_parameters()

    @torch.no_grad()
    def reset_lora_parameters(self) -> None:
        """A_i kaiming-uniform (a = sqrt(5)) per expert, as PEFT's LoRA; B = 0: starts as the identity."""
        for a in self.lora_A:  # init only; fan_in must be d_in, not r * d_in of the stacked tensor
            nn.init.kaiming_uniform_(a, a=5**0.5)
        nn.init.zeros_(self.lora_B)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, experts={self.num_experts}, "
            f"top_k={self.top_k}, rank={self.rank}, scaling={self.scaling:g}, p={self.gate_grad_exponent:g}"
        )

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits, p, g), each [T, E] in float32 at least, for tokens x [T, d_in]."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        if self.router is None:
            ones = x.new_ones(x.shape[0], 1, dtype=dtype)
            return ones, ones, ones
        # Softmax and top-k in float32 at least: bf16 logits tie often and renormalise poorly.
        logits = self.router(x.to(self.router.weight.dtype)).to(dtype)  # [T, E]
        p, g = GATINGS[self.router_normalization](logits, self.top_k)
        return logits, p, g

    def forward(self, x: Tensor) -> Tensor:
        result = self.base_layer(x)  # [..., d_out]
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(self.lora_A.dtype)  # [T, d_in]
        logits, p, g = self.gates(x2)
        if self.training and self.router is not None:
            self._observe(logits, p, g, lead)
        h = self.lora_dropout(x2) @ self.lora_A.reshape(-1, self.in_features).T  # [T, E*r]
        h = h.view(-1, self.num_experts, self.rank)  # [T, E, r]
        b_cat = self.lora_B.permute(1, 0, 2).reshape(self.out_features, -1)  # [d_out, E*r]
        y = self.expand(h, g, b_cat, self.scaling, self.gate_grad_exponent)  # [T, d_out]
        return result + y.view(*lead, self.out_features).to(result.dtype)

    def _observe(self, logits: Tensor, p: Tensor, g: Tensor, lead: torch.Size) -> None:
        """Routing statistics and router regularisers of a training forward."""
        mask = self.mask_context.token_mask(lead) if self.mask_context is not None else None
        # Activation checkpointing re-runs this forward inside backward: count each token once.
        if self.track_routing and not _in_backward():
            self.routing_stats.update(p.detach(), g.detach(), mask)
        aux, values = None, {}
        if self.load_balancing_coef > 0:
            values["load_balancing_loss"] = load_balancing_loss(p, g, mask)
            aux = self.load_balancing_coef * values["load_balancing_loss"]
        if self.z_loss_coef > 0:
            values["z_loss"] = z_loss(logits, mask)
            term = self.z_loss_coef * values["z_loss"]
            aux = term if aux is None else aux + term
        if aux is not None and not _in_backward():
            self.aux_loss = aux
            self.aux_values = {name: v.detach() for name, v in values.items()}


def _in_backward() -> bool:
    # The autograd engine sets a graph-task id while it runs backward (and checkpoint recomputes).
    return bool(torch._C._current_graph_task_id() != -1)
