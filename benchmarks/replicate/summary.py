"""`summary.md`: the paper's claims checked on the groups' `results.json`, with paired per-seed differences.

Every variant of a task trains on the same batches in the same order for a given seed, so
the per-seed difference between two variants is a paired comparison; the summary reports its
mean over seeds and in how many seeds the gate-rescaled variant was better.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from core.compare.report import fmt_aggregate

# (label, better variant's recipe, reference recipe)
PAIRS = (
    ("gate_rescaled vs classic", "gate_rescaled", "classic"),
    ("gate_rescaled vs classic, lr x sqrt(k)", "gate_rescaled", "classic_sqrtk"),
    ("gate_rescaled_exact vs classic", "gate_rescaled_exact", "classic"),
    ("classic vs no preconditioner", "classic", "moe_none"),
    ("gate_rescaled vs single LoRA", "gate_rescaled", "lora"),
)
# (summary key, label, higher is better)
MEASURES = (
    ("final_exact_match", "final EM", True),
    ("final_valid_loss", "final valid loss", False),
    ("mean_train_loss", "mean train loss over all steps", False),
)


def paired(
    results: dict[str, Any], ours: str, theirs: str, key: str, higher: bool
) -> tuple[float, int, int] | None:
    """(mean difference ours - theirs, seeds where ours is better, seeds compared), over shared seeds."""
    a, b = results["variants"].get(ours), results["variants"].get(theirs)
    if a is None or b is None:
        return None
    diffs = []
    for seed, run in a["runs"].items():
        other = b["runs"].get(seed)
        if other is None or not (_succeeded(run) and _succeeded(other)):
            continue
        x, y = _measure(run, key), _measure(other, key)
        if x is not None and y is not None:
            diffs.append(x - y)
    if not diffs:
        return None
    better = sum(1 for d in diffs if (d > 0 if higher else d < 0))
    return statistics.fmean(diffs), better, len(diffs)


def _succeeded(run: dict[str, Any]) -> bool:
    return bool(run["outcome"].get("status") == "succeeded")


def _measure(run: dict[str, Any], key: str) -> float | None:
    if key == "mean_train_loss":
        losses = [v for v in run["train"]["train_loss"] if v is not None]
        return statistics.fmean(losses) if losses else None
    value = run["summary"].get(key)
    return None if value is None else float(value)


def render_summary(
    profile_name: str, groups: dict[str, dict[str, dict[str, Any]]], seconds: dict[str, float]
) -> str:
    """`groups[task][group]` is that group's results document; `seconds[task/group]` its wall time."""
    lines = [f"# Reproduction summary: profile `{profile_name}`", ""]
    lines += [
        "Paired differences (first minus second variant) averaged over seeds, and the seeds where the",
        "first variant was better. Higher EM and lower losses are better. Gate entropy (nats, of the",
        "renormalised top-k gates; ln k when they are uniform) and max load (the busiest expert's share of",
        "routed slots; 1/E uniform, 1/k at most) are those of the last 10% of the steps, averaged over",
        "layers. The per-group reports hold the full tables, per-run numbers and figures.",
        "",
    ]
    for task, by_group in groups.items():
        lines += [f"## {task}", ""]
        lines += [
            "| group | variant | final EM | best EM | final valid loss | final train loss | gate entropy | max load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for group, results in by_group.items():
            for name, variant in results["variants"].items():
                agg = variant["aggregates"]
                cells = [group, f"`{name}`"] + [
                    fmt_aggregate(agg[k])
                    for k in (
                        "final_exact_match",
                        "best_exact_match",
                        "final_valid_loss",
                        "final_train_loss",
                        "gate_entropy",
                        "max_load",
                    )
                ]
                lines.append("| " + " | ".join(cells) + " |")
            base = results["baselines"]
            lines.append(
                f"| {group} | untrained / majority | {base['untrained'].get('valid_exact_match', 0):.4f} / "
                f"{base['majority_class']['accuracy']:.4f} | | {base['untrained'].get('valid_loss', float('nan')):.4f} | | | |"
            )
        lines += [
            "",
            "| group | comparison | measure | mean difference | first better in |",
            "| --- | --- | --- | --- | --- |",
        ]
        for group, results in by_group.items():
            optimizer = group.split("-")[0]
            for label, ours, theirs in PAIRS:
                for key, measure, higher in MEASURES:
                    found = paired(results, f"{optimizer}-{ours}", f"{optimizer}-{theirs}", key, higher)
                    if found is not None:
                        mean, better, n = found
                        lines.append(f"| {group} | {label} | {measure} | {mean:+.4f} | {better}/{n} seeds |")
        lines.append("")
    lines += ["## Wall time", ""]
    lines += [
        "Per comparison: the sum of its runs' own wall times (training and evaluations, whichever",
        "invocation ran them: a resumed sweep reuses finished runs), and the time this invocation spent.",
        "",
    ]
    run_total = 0.0
    for task, by_group in groups.items():
        for group, results in by_group.items():
            runs = [r for v in results["variants"].values() for r in v["runs"].values()]
            spent = sum(float(r["outcome"].get("wall_seconds") or 0.0) for r in runs)
            run_total += spent
            here = seconds.get(f"{task}/{group}", 0.0)
            lines.append(
                f"- {task}/{group}: {len(runs)} runs, {spent / 60:.1f} min of runs; this invocation {here / 60:.1f} min"
            )
    lines += [
        f"- total: {run_total / 60:.1f} min of runs; this invocation {sum(seconds.values()) / 60:.1f} min",
        "",
    ]
    return "\n".join(lines)


def write_summary(
    path: Path, profile_name: str, groups: dict[str, dict[str, dict[str, Any]]], seconds: dict[str, float]
) -> Path:
    path.write_text(render_summary(profile_name, groups, seconds))
    return path
