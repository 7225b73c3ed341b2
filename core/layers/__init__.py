"""MoE-LoRA layers and their custom backward."""

from core.layers.expand import GateRescaledExpand, gate_power, gate_rescaled_expand
from core.layers.moe_lora import MoELoRALayer, TokenMaskContext, in_out_features

__all__ = [
    "GateRescaledExpand",
    "MoELoRALayer",
    "TokenMaskContext",
    "gate_power",
    "gate_rescaled_expand",
    "in_out_features",
]
