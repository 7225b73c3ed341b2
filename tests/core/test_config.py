"""MoELoRAConfig validates on creation and names the field."""

from __future__ import annotations

import pytest

from core import MoELoRAConfig, resolve_gate_grad_exponent
from core.config import gate_strategy_name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_experts": 2, "top_k": 3}, "top_k"),
        ({"num_experts": 0}, "num_experts"),
        ({"num_experts": 2.5}, "num_experts"),
        ({"top_k": 0}, "top_k"),
        ({"rank": 0}, "rank"),
        ({"alpha": 0}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"target_modules": []}, "target_modules"),
        ({"gate_grad_exponent": 1.5}, "gate_grad_exponent"),
        ({"gate_grad_exponent": float("nan")}, "gate_grad_exponent"),
        ({"router_normalization": "sinkhorn"}, "router_normalization"),
        ({"router_normalization": "dense", "num_experts": 4, "top_k": 2}, "top_k"),
        ({"load_balancing_coef": -1}, "load_balancing_coef"),
        ({"adapter_type": "dora"}, "adapter_type"),
        ({"adapter_type": "lora", "num_experts": 4}, "num_experts"),
    ],
)
def test_invalid_values_raise_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        MoELoRAConfig(**kwargs)


def test_defaults_depend_on_the_adapter_type() -> None:
    moe = MoELoRAConfig()
    assert (moe.num_experts, moe.top_k, moe.gate_grad_exponent, moe.scaling) == (8, 2, 0.5, 4.0)
    lora = MoELoRAConfig(adapter_type="lora")
    assert (lora.num_experts, lora.top_k, lora.has_router) == (1, 1, False)
    assert MoELoRAConfig(num_experts=1).top_k == 1
    assert MoELoRAConfig(num_experts=6, router_normalization="dense").top_k == 6


def test_round_trip_through_a_dict_and_unknown_keys_are_rejected() -> None:
    config = MoELoRAConfig(num_experts=20, top_k=10, target_modules=["q_proj"])
    assert MoELoRAConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="^experts:"):
        MoELoRAConfig.from_dict({"experts": 3})


def test_named_gate_strategies() -> None:
    assert resolve_gate_grad_exponent() == 0.5
    assert resolve_gate_grad_exponent("classic") == 1.0
    assert resolve_gate_grad_exponent("gate_rescaled_exact") == 0.0
    assert resolve_gate_grad_exponent(exponent=0.25) == 0.25
    assert resolve_gate_grad_exponent("classic", 1.0) == 1.0
    with pytest.raises(ValueError, match="^gate_grad_exponent:"):
        resolve_gate_grad_exponent("classic", 0.5)
    with pytest.raises(ValueError, match="^gate_strategy:"):
        resolve_gate_grad_exponent("sqrt")
    assert gate_strategy_name(0.5) == "gate_rescaled" and gate_strategy_name(0.3) is None
