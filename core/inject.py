"""Put MoE-LoRA layers into a Hugging Face model, and read them back out.

We inject our own layer instead of registering it with PEFT's custom-module dispatch:
PEFT's LoRA keeps one `nn.Linear` per adapter in `ModuleDict`s and pairs A with B by
parameter name, while MoE-LoRA needs stacked `[E, r, d_in]` / `[E, d_out, r]` parameters,
a router, and a backward of its own. Injection keeps the state dict flat and the layer
small; `core.adapters` still writes plain LoRA adapters in PEFT's format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from core.config import MoELoRAConfig
from core.layers.moe_lora import MoELoRALayer, TokenMaskContext, in_out_features
from core.routers import RoutingSnapshot

CONFIG_ATTR = "moe_lora_config"


def _matches(name: str, targets: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def add_moe_lora(model: nn.Module, config: MoELoRAConfig) -> nn.Module:
    """Wrap `config.target_modules` of `model` in place and freeze everything else.

    Args:
        model: any module; targets are `nn.Linear` or transformers `Conv1D` submodules.
        config: the adapter settings.

    Returns:
        The same model, with the adapter parameters (and only they) trainable.
    """
    if any(True for _ in moe_lora_layers(model)):
        raise ValueError("model: already carries MoE-LoRA layers")
    targets = [n for n, _ in model.named_modules() if n and _matches(n, config.target_modules)]
    if not targets:
        raise ValueError(
            f"target_modules: no module of {type(model).__name__} matches {config.target_modules}"
        )
    for name in targets:
        try:
            in_out_features(model.get_submodule(name))
        except TypeError as err:
            raise ValueError(f"target_modules: {name}: {err}") from None
    for param in model.parameters():
        param.requires_grad_(False)
    context = TokenMaskContext()
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = MoELoRALayer(getattr(parent, child), config)
        layer.mask_context = context
        setattr(parent, child, layer)
    setattr(model, CONFIG_ATTR, config)
    model.register_forward_pre_hook(_capture_mask(context), with_kwargs=True)
    model.register_forward_hook(_release_mask(context))
    return model


def _capture_mask(context: TokenMaskContext) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        context.attention_mask = mask if isinstance(mask, Tensor) else None

    return hook


def _release_mask(context: TokenMaskContext) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        context.attention_mask = None

    return hook


def moe_lora_layers(model: nn.Module) -> Iterator[tuple[str, MoELoRALayer]]:
    """Yield `(module_name, layer)` for every MoE-LoRA layer of `model`."""
    for name, module in model.named_modules():
        if isinstance(module, MoELoRALayer):
            yield name, module


def adapter_config(model: nn.Module) -> MoELoRAConfig:
    """The config `add_moe_lora` was called with."""
    config = getattr(model, CONFIG_ATTR, None)
    if not isinstance(config, MoELoRAConfig):
        raise ValueError("model: carries no MoE-LoRA adapter (call add_moe_lora first)")
    return config


def router_aux_loss(model: nn.Module) -> tuple[Tensor | None, dict[str, Tensor]]:
    """Sum of the router regularisers of the last training forward, and their mean values.

    Clears them, so a regulariser is never added twice. Returns (None, {}) when they are off.
    The values stay on the device (no sync); read them with `float()` when logging.
    """
    total: Tensor | None = None
    sums: dict[str, list[Tensor]] = {}
    for _, layer in moe_lora_layers(model):
        if layer.aux_loss is not None:
            total = layer.aux_loss if total is None else total + layer.aux_loss
            for name, value in layer.aux_values.items():
                sums.setdefault(name, []).append(value)
        layer.aux_loss, layer.aux_values = None, {}
    values = {name: torch.stack(v).mean() for name, v in sums.items()}
    return total, values


def routing_snapshot(model: nn.Module, reset: bool = True) -> dict[str, RoutingSnapshot]:
    """Per-layer routing statistics since the last reset (layers that routed nothing are left out)."""
    out = {}
    for name, layer in moe_lora_layers(model):
        snap = layer.routing_stats.snapshot()
        if snap is not None:
            out[name] = snap
        if reset:
            layer.routing_stats.reset()
    return out
