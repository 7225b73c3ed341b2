"""moetune's numerical core: MoE-LoRA layers, the gate-rescaled backward and per-expert
Riemannian optimizers (Sun et al., ICML 2025; Zhang & Pilanci, ICML 2024).

The public API:

    from core import MoELoRAConfig, add_moe_lora, moe_lora_layers, create_optimizer, save_adapter, load_adapter
"""

from core.adapters import load_adapter, read_adapter_config, save_adapter
from core.config import GATE_STRATEGIES, MoELoRAConfig, resolve_gate_grad_exponent
from core.inject import add_moe_lora, moe_lora_layers, router_aux_loss, routing_snapshot
from core.layers import MoELoRALayer
from core.optim import create_optimizer

__all__ = [
    "GATE_STRATEGIES",
    "MoELoRAConfig",
    "MoELoRALayer",
    "add_moe_lora",
    "create_optimizer",
    "load_adapter",
    "moe_lora_layers",
    "read_adapter_config",
    "resolve_gate_grad_exponent",
    "router_aux_loss",
    "routing_snapshot",
    "save_adapter",
]
