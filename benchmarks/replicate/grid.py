"""A profile's variant grid, expanded into one comparison document per (optimizer, router regime) group.

Recipes (all on the profile's adapter, E experts with top-k routing, unless stated):

| recipe | adapter | preconditioner | gate strategy | expert lr |
|---|---|---|---|---|
| `lora` | single LoRA, same rank | Riemannian | - | lr |
| `moe_none` | MoE-LoRA | none | classic (plain autograd) | lr |
| `classic` | MoE-LoRA | Riemannian per expert | classic (p = 1) | lr |
| `classic_sqrtk` | MoE-LoRA | Riemannian per expert | classic (p = 1) | lr * sqrt(k) |
| `gate_rescaled` | MoE-LoRA | Riemannian per expert | gate_rescaled (p = 1/2, the paper's) | lr |
| `gate_rescaled_exact` | MoE-LoRA | Riemannian per expert | gate_rescaled_exact (p = 0) | lr |

The router learning rate is the regime's: `frozen` is the paper's 3e-8, `trained` a factor
of the group's expert lr (the same number for every recipe of the group, `classic_sqrtk`
included, so that the control changes the experts' step only).
"""

from __future__ import annotations

import math
from typing import Any

from core.compare import CompareConfig, deep_merge

RECIPES: dict[str, dict[str, Any]] = {
    "lora": {
        "adapter": {"type": "lora", "num_experts": 1, "top_k": 1},
        "optimizer": {"preconditioner": "riemannian", "gate_strategy": "classic"},
    },
    "moe_none": {"optimizer": {"preconditioner": "none", "gate_strategy": "classic"}},
    "classic": {"optimizer": {"preconditioner": "riemannian", "gate_strategy": "classic"}},
    "classic_sqrtk": {"optimizer": {"preconditioner": "riemannian", "gate_strategy": "classic"}},
    "gate_rescaled": {"optimizer": {"preconditioner": "riemannian", "gate_strategy": "gate_rescaled"}},
    "gate_rescaled_exact": {
        "optimizer": {"preconditioner": "riemannian", "gate_strategy": "gate_rescaled_exact"}
    },
}


def group_name(group: dict[str, Any]) -> str:
    return f"{group['optimizer']}-router_{group['router']}"


def variant_name(group: dict[str, Any], recipe: str) -> str:
    return f"{group['optimizer']}-{recipe}"


def group_runs_task(group: dict[str, Any], task: str) -> bool:
    """A group runs on every task of its profile unless it names a subset under `tasks`."""
    return task in group.get("tasks", [task])


def compare_document(
    profile: dict[str, Any], group: dict[str, Any], seeds: list[int], task: str | None = None
) -> dict[str, Any]:
    """The comparison document of one group, validated (raises `CompareConfigError` on a bad profile).

    With `task`, that task's `job` entry in the profile (if any) overrides the profile's job,
    e.g. fewer steps or longer sequences for a multiple-choice task.
    """
    job = profile["job"]
    if task is not None:
        job = deep_merge(job, profile["tasks"][task].get("job", {}))
    optimizer = profile["optimizers"][group["optimizer"]]
    regime = profile["routers"][group["router"]]
    lr = float(optimizer["learning_rate"])
    router_lr = (
        regime["router_learning_rate"]
        if "router_learning_rate" in regime
        else lr * regime["router_learning_rate_factor"]
    )
    base = deep_merge(
        job,
        {
            "hyperparameters": {"learning_rate": lr},
            "optimizer": {**optimizer.get("optimizer", {}), "router_learning_rate": router_lr},
        },
    )
    k = int(base["adapter"]["top_k"])
    variants: dict[str, dict[str, Any]] = {}
    for recipe in group["variants"]:
        if recipe not in RECIPES:
            raise ValueError(
                f"profile group {group_name(group)}: unknown recipe {recipe!r}; use one of {sorted(RECIPES)}"
            )
        override = RECIPES[recipe]
        if recipe == "classic_sqrtk":
            override = deep_merge(override, {"hyperparameters": {"learning_rate": lr * math.sqrt(k)}})
        variants[variant_name(group, recipe)] = override
    document = {"seeds": seeds, "base": base, "variants": variants}
    CompareConfig.from_dict(document)
    return document
