"""Typed adapter settings for MoE-LoRA (Sun et al., ICML 2025, arXiv 2502.15828).

Validated on creation: a wrong value raises `ValueError` whose message starts with the
field name, so the API can map it to a 4xx error naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AdapterType = Literal["moe_lora", "lora"]
RouterNormalization = Literal["topk", "dense"]

# method.md section 2: the exponent p of the gate factor g^p on the gradient into each expert.
GATE_STRATEGIES: dict[str, float] = {
    "classic": 1.0,
    "gate_rescaled": 0.5,
    "gate_rescaled_exact": 0.0,
}
DEFAULT_GATE_STRATEGY = "gate_rescaled"

# Defaults that depend on the adapter type: a plain LoRA is one always-chosen expert.
_TYPE_DEFAULTS: dict[str, tuple[int, int]] = {"moe_lora": (8, 2), "lora": (1, 1)}


def resolve_gate_grad_exponent(strategy: str | None = None, exponent: float | None = None) -> float:
    """Return `p` from a named strategy or an explicit exponent (not both, unless they agree)."""
    if strategy is not None and strategy not in GATE_STRATEGIES:
        names = ", ".join(GATE_STRATEGIES)
        raise ValueError(f"gate_strategy: unknown strategy {strategy!r}; expected one of {names}")
    if exponent is not None:
        if strategy is not None and GATE_STRATEGIES[strategy] != exponent:
            raise ValueError(
                f"gate_grad_exponent: {exponent} contradicts gate_strategy {strategy!r} "
                f"(= {GATE_STRATEGIES[strategy]}); give one of them"
            )
        return float(exponent)
    return GATE_STRATEGIES[strategy or DEFAULT_GATE_STRATEGY]


def gate_strategy_name(exponent: float) -> str | None:
    """The named strategy for an exponent, or None for a custom one."""
    return next((name for name, p in GATE_STRATEGIES.items() if p == exponent), None)


@dataclass
class MoELoRAConfig:
    """Settings of a MoE-LoRA (or plain LoRA) adapter.

    Args:
        adapter_type: `moe_lora`, or `lora` (one expert, no router; saved in PEFT's format).
        num_experts: E; defaults to 8 for `moe_lora`, fixed at 1 for `lora`.
        top_k: k experts per token; defaults to 2 for `moe_lora` (E for `dense`), 1 for `lora`.
        rank: r of every expert.
        alpha: scaling numerator; the scaling is `alpha / rank`.
        dropout: dropout on the layer input of the expert path.
        target_modules: module names (last components, or dotted suffixes) to wrap.
        gate_grad_exponent: p in [0, 1] of the gate-rescaled backward (0.5 = the paper's).
        router_normalization: `topk` (softmax, top-k, renormalise: the paper's) or `dense`.
        load_balancing_coef: weight of the Switch/Mixtral load-balancing loss (0 = off).
        z_loss_coef: weight of the router z-loss (0 = off).
    """

    adapter_type: AdapterType = "moe_lora"
    num_experts: int | None = None
    top_k: int | None = None
    rank: int = 4
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    gate_grad_exponent: float = GATE_STRATEGIES[DEFAULT_GATE_STRATEGY]
    router_normalization: RouterNormalization = "topk"
    load_balancing_coef: float = 0.0
    z_loss_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.adapter_type not in _TYPE_DEFAULTS:
            raise ValueError(f"adapter_type: expected 'moe_lora' or 'lora', got {self.adapter_type!r}")
        default_e, default_k = _TYPE_DEFAULTS[self.adapter_type]
        if self.adapter_type == "lora":
            for name in ("num_experts", "top_k"):
                if getattr(self, name) not in (None, 1):
                    raise ValueError(
                        f"{name}: a 'lora' adapter has exactly one expert, got {getattr(self, name)}"
                    )
            if self.router_normalization != "topk":
                raise ValueError("router_normalization: a 'lora' adapter has no router")
        self.num_experts = default_e if self.num_experts is None else self.num_experts
        _check_int("num_experts", self.num_experts, 1)
        if self.top_k is None:
            self.top_k = (
                self.num_experts if self.router_normalization == "dense" else min(default_k, self.num_experts)
            )
        _check_int("top_k", self.top_k, 1)
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k: {self.top_k} is larger than num_experts ({self.num_experts})")
        if self.router_normalization not in ("topk", "dense"):
            raise ValueError(
                f"router_normalization: expected 'topk' or 'dense', got {self.router_normalization!r}"
            )
        if self.router_normalization == "dense" and self.top_k != self.num_experts:
            raise ValueError(f"top_k: a 'dense' router uses all {self.num_experts} experts, got {self.top_k}")
        _check_int("rank", self.rank, 1)
        _check_float("alpha", self.alpha, low=0.0, low_open=True)
        _check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
            raise ValueError("target_modules: expected a non-empty list of module names")
        self.target_modules = list(self.target_modules)
        _check_float("gate_grad_exponent", self.gate_grad_exponent, low=0.0, high=1.0)
        self.gate_grad_exponent = float(self.gate_grad_exponent)
        _check_float("load_balancing_coef", self.load_balancing_coef, low=0.0)
        _check_float("z_loss_coef", self.z_loss_coef, low=0.0)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    @property
    def has_router(self) -> bool:
        return self.adapter_type == "moe_lora"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoELoRAConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown adapter setting")
        return cls(**data)


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")


def _check_float(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, got {value}")
