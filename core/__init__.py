"""moetune's numerical core: MoE-LoRA layers, the gate-rescaled backward and per-expert
Riemannian optimizers (Sun et al., ICML 2025; Zhang & Pilanci, ICML 2024).

The public API:

    from core import MoELoRAConfig, add_moe_lora, moe_lora_layers, create_optimizer, save_adapter, load_adapter

Names load on first use (PEP 562), so `import core.data` in the API process, which only
validates uploads, does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.adapters import load_adapter, read_adapter_config, save_adapter
    from core.config import GATE_STRATEGIES, MoELoRAConfig, resolve_gate_grad_exponent
    from core.inject import add_moe_lora, moe_lora_layers, router_aux_loss, routing_snapshot
    from core.layers import MoELoRALayer
    from core.optim import create_optimizer

_EXPORTS = {
    "load_adapter": "core.adapters",
    "read_adapter_config": "core.adapters",
    "save_adapter": "core.adapters",
    "GATE_STRATEGIES": "core.config",
    "MoELoRAConfig": "core.config",
    "resolve_gate_grad_exponent": "core.config",
    "add_moe_lora": "core.inject",
    "moe_lora_layers": "core.inject",
    "router_aux_loss": "core.inject",
    "routing_snapshot": "core.inject",
    "MoELoRALayer": "core.layers",
    "create_optimizer": "core.optim",
}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
