"""Reading the runs' metrics back and aggregating them per variant (pure Python: no torch).

Per run, from `metrics.jsonl`: the train-loss curve, the evaluations, and routing summaries.
Scores: `final_*` is the last evaluation (the trainer always evaluates at the last step) and
`best_*` the best over all evaluations of the run. `final_train_loss`, `gate_entropy`,
`max_load` and `dead_experts` summarise the final window, the last 10% of the steps (at least
the last logged step): train loss averaged over its steps; routing statistics token-weighted
over its records. `max_load` is the largest expert's share of routed slots, averaged over the
adapted layers (uniform routing gives 1/E, and top-k caps it at 1/k); `dead_experts` counts
(layer, expert) pairs that received no token in the window. Per variant, each summary is
aggregated over the successful seeds as mean and sample standard deviation (n - 1; None for n < 2).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.compare.sweep import RunPlan, read_outcome

FINAL_WINDOW = 0.1
SUMMARY_KEYS = (
    "final_exact_match",
    "best_exact_match",
    "final_valid_loss",
    "best_valid_loss",
    "final_train_loss",
    "gate_entropy",
    "max_load",
    "dead_experts",
)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def collect_run(plan: RunPlan) -> dict[str, Any]:
    """Everything the report needs from one run's directory, JSON-ready."""
    records = read_metrics(plan.directory / "metrics.jsonl")
    steps = [r for r in records if "train_loss" in r]
    evals = [r for r in records if "valid_loss" in r]
    routed = [r for r in steps if r.get("routing")]
    run: dict[str, Any] = {
        "variant": plan.variant,
        "seed": plan.seed,
        "outcome": _outcome(plan),
        "train": {k: [r.get(k) for r in steps] for k in ("step", "train_loss", "learning_rate", "grad_norm")},
        "eval": {
            k: [r.get(k) for r in evals]
            for k in ("step", "valid_loss", "valid_exact_match", "valid_mean_token_accuracy")
        },
        "routing": {
            "step": [r["step"] for r in routed],
            "gate_entropy": [_layer_mean(r["routing"], "gate_entropy") for r in routed],
            "router_entropy": [_layer_mean(r["routing"], "router_entropy") for r in routed],
            "max_load": [_max_load(r["routing"].values()) for r in routed],
            "dead_experts": [sum(int(s["dead_experts"]) for s in r["routing"].values()) for r in routed],
        },
        "preconditioner": _counters(steps[-1].get("preconditioner")) if steps else None,
    }
    window = _final_window(steps)
    load = _window_load(window) if any(r.get("routing") for r in window) else None
    run["final_expert_load"] = load
    run["summary"] = _summary(run, window, load)
    return run


def _summary(
    run: dict[str, Any], window: list[dict[str, Any]], load: dict[str, list[float]] | None
) -> dict[str, Any]:
    em = [v for v in run["eval"]["valid_exact_match"] if v is not None]
    loss = [v for v in run["eval"]["valid_loss"] if v is not None]
    routed = [r for r in window if r.get("routing")]
    return {
        "final_exact_match": em[-1] if em else None,
        "best_exact_match": max(em) if em else None,
        "final_valid_loss": loss[-1] if loss else None,
        "best_valid_loss": min(loss) if loss else None,
        "final_train_loss": statistics.fmean(r["train_loss"] for r in window) if window else None,
        "gate_entropy": _weighted_entropy(routed) if routed else None,
        "max_load": _max_load_of(load.values()) if load else None,
        "dead_experts": sum(sum(1 for v in shares if v == 0.0) for shares in load.values()) if load else None,
    }


def aggregate(values: Sequence[float | int | None]) -> dict[str, Any]:
    """Mean and sample standard deviation of the non-missing values."""
    present = [float(v) for v in values if v is not None]
    return {
        "mean": statistics.fmean(present) if present else None,
        "std": statistics.stdev(present) if len(present) > 1 else None,
        "n": len(present),
        "values": present,
    }


def aggregate_variant(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per summary key, the aggregate over this variant's successful runs."""
    ok = [r for r in runs if r["outcome"].get("status") == "succeeded"]
    return {key: aggregate([r["summary"][key] for r in ok]) for key in SUMMARY_KEYS}


def mean_curve(runs: Sequence[dict[str, Any]], part: str, key: str) -> dict[str, list[float]]:
    """Mean, min, max and std over runs of `part.key` at the steps every run logged."""
    series = [dict(zip(r[part]["step"], r[part][key], strict=True)) for r in runs]
    if not series:
        return {"step": [], "mean": [], "min": [], "max": [], "std": []}
    steps = sorted(set.intersection(*(set(s) for s in series)))
    steps = [s for s in steps if all(x[s] is not None for x in series)]
    values = [[float(x[s]) for x in series] for s in steps]
    return {
        "step": steps,
        "mean": [statistics.fmean(v) for v in values],
        "min": [min(v) for v in values],
        "max": [max(v) for v in values],
        "std": [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values],
    }


def mean_expert_load(runs: Sequence[dict[str, Any]]) -> dict[str, list[float]] | None:
    """Final-window expert load per layer, averaged over runs (None when no run routed)."""
    loads = [r["final_expert_load"] for r in runs if r.get("final_expert_load")]
    if not loads:
        return None
    layers = list(loads[0])
    return {
        name: [statistics.fmean(col) for col in zip(*(load[name] for load in loads), strict=True)]
        for name in layers
    }


def _outcome(plan: RunPlan) -> dict[str, Any]:
    """`run.json`; a run with a final adapter but no outcome file (trained elsewhere) counts as succeeded."""
    outcome = read_outcome(plan.directory)
    if not outcome and plan.state() == "done":
        outcome = {"status": "succeeded"}
    return outcome


def _counters(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The preconditioner's run-level counters (per-layer condition numbers stay in metrics.jsonl)."""
    return None if stats is None else {k: v for k, v in stats.items() if k != "layers"}


def _final_window(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not steps:
        return []
    last = steps[-1]["step"]
    width = max(1, math.ceil(FINAL_WINDOW * last))
    return [r for r in steps if r["step"] > last - width]


def _window_load(window: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per layer, the expert load token-weighted over the window's records."""
    routed = [r for r in window if r.get("routing")]
    out: dict[str, list[float]] = {}
    for name in routed[-1]["routing"]:
        snaps = [r["routing"][name] for r in routed if name in r["routing"]]
        tokens = sum(s["tokens"] for s in snaps)
        out[name] = [
            sum(s["expert_load"][e] * s["tokens"] for s in snaps) / tokens
            for e in range(len(snaps[0]["expert_load"]))
        ]
    return out


def _weighted_entropy(routed: list[dict[str, Any]]) -> float:
    """Gate entropy token-weighted over records, then averaged over layers."""
    names = list(routed[-1]["routing"])
    per_layer = []
    for name in names:
        snaps = [r["routing"][name] for r in routed if name in r["routing"]]
        per_layer.append(
            sum(s["gate_entropy"] * s["tokens"] for s in snaps) / sum(s["tokens"] for s in snaps)
        )
    return statistics.fmean(per_layer)


def _layer_mean(routing: dict[str, dict[str, Any]], key: str) -> float:
    return statistics.fmean(float(s[key]) for s in routing.values())


def _max_load(snapshots: Iterable[dict[str, Any]]) -> float:
    return _max_load_of(s["expert_load"] for s in snapshots)


def _max_load_of(loads: Iterable[Sequence[float]]) -> float:
    return statistics.fmean(max(shares) for shares in loads)
