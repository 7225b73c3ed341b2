"""Adapters read for serving: one saved directory -> per-module tensors laid out for the bank.

A saved MoE-LoRA module holds `lora_A` [E, r, d_in], `lora_B` [E, d_out, r] and `router`
[E, d_in] (method.md section 1; a plain LoRA drops the expert axis and has no router). For
serving each module is stored in the two forms the batched forward multiplies with:

    w  = [A_1; ...; A_E; W_g]        [E*r + E, d_in]   the shrink GEMM and the router in one GEMM
    bt = (s * [B_1, ..., B_E])^T     [E*r, d_out]      the expand GEMM, scaling folded in

so that building a batch's bank is a concatenation, and the scaling costs no op per forward.
`bt` is stored transposed and contiguous: `addmm(y, m, bt)` is a plain row-major GEMM, while a
transposed view of `[d_out, E*r]` takes a slower path on CPU (2-5x for these small shapes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from core.adapters import PREFIX, WEIGHTS_NAME, read_adapter_config
from core.config import MoELoRAConfig, RouterNormalization
from core.layers.moe_lora import in_out_features

_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".router.weight")


@dataclass(frozen=True)
class AdapterKey:
    """Who owns an adapter and which one: the adapter cache's key (tenants never share entries)."""

    tenant: str
    adapter_id: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.adapter_id}"


@dataclass(frozen=True)
class ModuleWeights:
    """One target module of one adapter, in the bank's layout (see the module docstring)."""

    w: Tensor  # [E*r + E, d_in]; a plain LoRA has one zero router row (logit 0, so gate 1)
    bt: Tensor  # [E*r, d_out]: the experts' B side by side, transposed, times the scaling alpha / r
    num_experts: int
    rank: int

    @property
    def nbytes(self) -> int:
        return self.w.numel() * self.w.element_size() + self.bt.numel() * self.bt.element_size()


@dataclass(frozen=True)
class ServingAdapter:
    """An adapter ready to be put into a batch: its routing settings and per-module weights."""

    name: str  # where it came from, for error messages
    config: MoELoRAConfig
    modules: dict[str, ModuleWeights]  # module name in the base model -> weights

    @property
    def top_k(self) -> int:
        assert self.config.top_k is not None  # resolved by MoELoRAConfig
        return self.config.top_k

    @property
    def num_experts(self) -> int:
        assert self.config.num_experts is not None
        return self.config.num_experts

    @property
    def normalization(self) -> RouterNormalization:
        return self.config.router_normalization

    @property
    def routed(self) -> bool:
        return self.config.has_router

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.modules.values())


def _matches(name: str, targets: Iterable[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def target_features(module: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of a module an adapter may target (also once wrapped for serving)."""
    base = getattr(module, "base_layer", module)
    assert isinstance(base, nn.Module)
    return in_out_features(base)


@torch.no_grad()
def read_serving_adapter(
    directory: str | os.PathLike[str], model: nn.Module, dtype: torch.dtype, device: torch.device
) -> ServingAdapter:
    """Read the adapter saved in `directory` (ours or a stock PEFT LoRA) for `model`.

    Every tensor must name a targetable module of `model` with matching shapes, and every
    module the config targets must have its tensors; anything else raises `ValueError`
    naming the tensor, as `core.adapters.load_adapter` does.
    """
    path = Path(directory)
    config = read_adapter_config(path)
    state = load_file(str(path / WEIGHTS_NAME))
    modules = dict(model.named_modules())
    names = sorted({_module_name(key) for key in state})
    for name in names:
        if name not in modules or not _targetable(modules[name]):
            raise ValueError(f"{PREFIX}{name}: the base model has no linear module {name!r}")
    # PEFT's "all-linear" names no module: then the tensors say which modules are targeted.
    if config.target_modules != ["all-linear"]:
        expected = {n for n, m in modules.items() if _matches(n, config.target_modules) and _targetable(m)}
        missing = sorted(expected - set(names))
        if missing:
            raise ValueError(f"{path / WEIGHTS_NAME}: no tensors for targeted modules {missing[:3]}")
    e, r = config.num_experts, config.rank
    assert e is not None
    out: dict[str, ModuleWeights] = {}
    for name in names:
        d_in, d_out = target_features(modules[name])
        shapes: dict[str, tuple[int, ...]] = {"lora_A": (e, r, d_in), "lora_B": (e, d_out, r)}
        if config.has_router:
            shapes["router"] = (e, d_in)
        tensors = {}
        for attr, shape in shapes.items():
            key = f"{PREFIX}{name}.{attr}.weight"
            if key not in state:
                raise ValueError(f"{key}: missing from {path / WEIGHTS_NAME}")
            tensor = state[key]
            # A plain LoRA is saved in PEFT's shapes, [r, d_in] and [d_out, r]: one expert.
            allowed = {shape, shape[1:]} if config.adapter_type == "lora" else {shape}
            if tuple(tensor.shape) not in allowed:
                raise ValueError(f"{key}: shape {tuple(tensor.shape)} does not fit {name} ({shape})")
            tensors[attr] = tensor.reshape(shape).to(device=device, dtype=dtype)
        a = tensors["lora_A"].reshape(e * r, d_in)  # [E*r, d_in], expert-major
        router = tensors["router"] if config.has_router else a.new_zeros(1, d_in)  # [E, d_in]
        bt = tensors["lora_B"].permute(0, 2, 1).reshape(e * r, d_out)  # [E*r, d_out], expert-major
        out[name] = ModuleWeights(
            w=torch.cat([a, router]).contiguous(),  # [E*r + E, d_in]
            bt=(bt * config.scaling).contiguous(),
            num_experts=e,
            rank=r,
        )
    return ServingAdapter(name=str(path), config=config, modules=out)


def _module_name(key: str) -> str:
    if not key.startswith(PREFIX) or not key.endswith(_SUFFIXES):
        raise ValueError(f"{key}: not an adapter tensor")
    stem = key[len(PREFIX) :]
    return next(stem[: -len(s)] for s in _SUFFIXES if stem.endswith(s))


def _targetable(module: nn.Module) -> bool:
    try:
        target_features(module)
    except (TypeError, AssertionError):
        return False
    return True
