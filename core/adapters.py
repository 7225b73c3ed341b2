"""Save and load adapters as PEFT-style directories.

    adapter_config.json         PEFT's config (a plain LoRA loads with `peft.PeftModel.from_pretrained`)
    adapter_model.safetensors   tensors named `base_model.model.<module>.lora_A.weight`, ...
    moetune_config.json         our MoELoRAConfig (experts, top-k, gate exponent, router options)

MoE-LoRA tensors keep their stacked shapes (`lora_A.weight` [E, r, d_in], `lora_B.weight`
[E, d_out, r], `router.weight` [E, d_in]); a plain LoRA drops the expert axis so that PEFT
reads it as its own. Directories are written atomically: a temp directory, then a rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from core.config import MoELoRAConfig
from core.inject import adapter_config, add_moe_lora, moe_lora_layers

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
MOETUNE_CONFIG_NAME = "moetune_config.json"
PREFIX = "base_model.model."
FORMAT_VERSION = 1


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapter's tensors under their saved names (contiguous CPU copies)."""
    config = adapter_config(model)
    state = {}
    for name, layer in moe_lora_layers(model):
        a, b = layer.lora_A.detach(), layer.lora_B.detach()
        if config.adapter_type == "lora":
            a, b = a[0], b[0]  # [r, d_in], [d_out, r]: PEFT's shapes
        state[f"{PREFIX}{name}.lora_A.weight"] = a
        state[f"{PREFIX}{name}.lora_B.weight"] = b
        if layer.router is not None:
            state[f"{PREFIX}{name}.router.weight"] = layer.router.weight.detach()
    return {k: v.to("cpu").contiguous() for k, v in state.items()}


def _peft_config(config: MoELoRAConfig, model: nn.Module, base_name: str | None) -> dict[str, Any]:
    """PEFT's LoraConfig for a plain LoRA; a descriptive config of our own type for MoE-LoRA."""
    fan_in_fan_out = any(type(layer.base_layer).__name__ == "Conv1D" for _, layer in moe_lora_layers(model))
    if config.adapter_type == "lora":
        from peft import LoraConfig  # PEFT writes its own format: stays loadable by PEFT, vLLM, LoRAX

        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,  # type: ignore[arg-type]  # PEFT annotates int; it computes alpha / r
            lora_dropout=config.dropout,
            target_modules=sorted(set(config.target_modules)),
            fan_in_fan_out=fan_in_fan_out,
            bias="none",
            base_model_name_or_path=base_name,
            task_type="CAUSAL_LM" if hasattr(model, "generate") else None,
        )
        return lora.to_dict()
    return {
        "peft_type": "MOE_LORA",
        "base_model_name_or_path": base_name,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "target_modules": sorted(set(config.target_modules)),
        "fan_in_fan_out": fan_in_fan_out,
        "num_experts": config.num_experts,
        "top_k": config.top_k,
    }


def save_adapter(
    model: nn.Module, directory: str | os.PathLike[str], base_model_name: str | None = None
) -> Path:
    """Write the adapter of `model` to `directory` atomically; returns the directory."""
    config = adapter_config(model)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_file(adapter_state_dict(model), tmp / WEIGHTS_NAME, metadata={"format": "pt"})
        peft_config = _peft_config(config, model, base_model_name)
        (tmp / CONFIG_NAME).write_text(json.dumps(peft_config, indent=2, default=list))
        ours = {"format_version": FORMAT_VERSION, "base_model": base_model_name, "adapter": config.to_dict()}
        (tmp / MOETUNE_CONFIG_NAME).write_text(json.dumps(ours, indent=2))
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _replace_dir(src: Path, dst: Path) -> None:
    """Move `src` to `dst`, replacing an existing directory with a rename, never half-written."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def read_adapter_config(directory: str | os.PathLike[str]) -> MoELoRAConfig:
    """The MoELoRAConfig of a saved adapter (ours, or a stock PEFT LoRA directory)."""
    path = Path(directory)
    ours = path / MOETUNE_CONFIG_NAME
    if ours.exists():
        return MoELoRAConfig.from_dict(json.loads(ours.read_text())["adapter"])
    peft = path / CONFIG_NAME
    if not peft.exists():
        raise FileNotFoundError(f"{path}: no {MOETUNE_CONFIG_NAME} or {CONFIG_NAME}")
    data = json.loads(peft.read_text())
    if data.get("peft_type") != "LORA":
        raise ValueError(f"{peft}: unsupported peft_type {data.get('peft_type')!r}")
    targets = data["target_modules"]
    return MoELoRAConfig(
        adapter_type="lora",
        rank=data["r"],
        alpha=data["lora_alpha"],
        dropout=data.get("lora_dropout", 0.0),
        target_modules=[targets] if isinstance(targets, str) else list(targets),
    )


@torch.no_grad()
def load_adapter(base_model: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Add the adapter saved in `directory` to `base_model` (in place) and return it.

    Every tensor must match a layer of the model and every layer must get its tensors;
    anything else raises `ValueError` naming the tensor.
    """
    config = read_adapter_config(directory)
    model = add_moe_lora(base_model, config)
    state = load_file(str(Path(directory) / WEIGHTS_NAME))
    expected = adapter_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{WEIGHTS_NAME}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise ValueError(
                f"{key}: shape {tuple(state[key].shape)} does not fit the model ({tuple(tensor.shape)})"
            )
    for name, layer in moe_lora_layers(model):
        for attr, param in (("lora_A", layer.lora_A), ("lora_B", layer.lora_B)):
            tensor = state[f"{PREFIX}{name}.{attr}.weight"]
            param.copy_(tensor.view(param.shape))
        if layer.router is not None:
            layer.router.weight.copy_(state[f"{PREFIX}{name}.router.weight"])
    return model
