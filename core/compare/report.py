"""`report.md`: the comparison as markdown tables, rendered from the `results.json` document alone."""

from __future__ import annotations

from typing import Any

SCORE_COLUMNS = (
    ("final_exact_match", "final EM"),
    ("best_exact_match", "best EM"),
    ("final_valid_loss", "final valid loss"),
    ("best_valid_loss", "best valid loss"),
    ("final_train_loss", "final train loss"),
    ("gate_entropy", "gate entropy"),
    ("max_load", "max load"),
    ("dead_experts", "dead experts"),
)
DASH = "–"


def fmt_aggregate(agg: dict[str, Any]) -> str:
    """`mean ± std` with 4 decimals; the mean alone for one seed; a dash when missing."""
    if agg["mean"] is None:
        return DASH
    return f"{agg['mean']:.4f}" if agg["std"] is None else f"{agg['mean']:.4f} ± {agg['std']:.4f}"


def fmt_value(value: float | int | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def render_report(results: dict[str, Any]) -> str:
    """The whole report: settings, the score table with baseline rows, per-run details, definitions."""
    data, base = results["data"], results["baselines"]
    lines = [
        "# Strategy comparison",
        "",
        f"- train file: `{data['train_file']}` ({data['train_examples']} examples, sha256 `{data['train_sha256'][:12]}`)",
        f"- validation file: `{data['valid_file']}` ({data['valid_examples']} examples, sha256 "
        f"`{data['valid_sha256'][:12]}`); exact match (EM) on the first {data['exact_match_examples']}",
        f"- seeds: {', '.join(str(s) for s in results['config']['seeds'])}; every variant trains on the same "
        "batches in the same order for a given seed",
        "- scores: mean ± sample standard deviation over the successful seeds; definitions below the tables",
        "",
        "## Scores",
        "",
        _table_header(["variant", "adapter", "optimizer", "gate strategy", "lr", "router lr", "runs"]),
    ]
    untrained = base.get("untrained")
    if untrained is not None:
        lines.append(
            _baseline_row("untrained model", untrained.get("valid_exact_match"), untrained.get("valid_loss"))
        )
    majority = base.get("majority_class")
    if majority is not None:
        lines.append(
            _baseline_row(f"majority class (always `{majority['completion']}`)", majority["accuracy"], None)
        )
    for name, variant in results["variants"].items():
        d = variant["description"]
        runs = variant["runs"].values()
        ok = sum(1 for r in runs if r["outcome"].get("status") == "succeeded")
        cells = [
            f"`{name}`",
            d["adapter"],
            d["optimizer"],
            d["gate_strategy"],
            d["learning_rate"],
            d["router_learning_rate"],
        ]
        cells.append(f"{ok}/{len(variant['runs'])}")
        cells += [fmt_aggregate(variant["aggregates"][key]) for key, _ in SCORE_COLUMNS]
        lines.append(_row(cells))
    lines += ["", "## Runs", "", _run_header()]
    for name, variant in results["variants"].items():
        for seed, run in variant["runs"].items():
            lines.append(_run_row(name, seed, run))
    failures = [
        (name, seed, run["outcome"])
        for name, variant in results["variants"].items()
        for seed, run in variant["runs"].items()
        if run["outcome"].get("status") == "failed"
    ]
    if failures:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{n}` seed {s}: {o['kind']}: {o['message']}" for n, s, o in failures]
    if untrained is not None and untrained.get("valid_exact_match_samples"):
        lines += ["", "## What the untrained model answers", ""]
        for sample in untrained["valid_exact_match_samples"]:
            lines.append(
                f"- line {sample['line']}: `{_inline(sample['prediction'])}` (reference `{sample['reference']}`)"
            )
    lines += ["", "## Figures", "", "![loss curves](loss_curves.png)", ""]
    if results.get("best_moe_variant"):
        lines += [f"Expert load of `{results['best_moe_variant']}` (the best MoE variant by final EM):", ""]
        lines += ["![expert load](expert_load.png)", ""]
    lines += ["## Definitions", "", *DEFINITIONS, ""]
    return "\n".join(lines)


DEFINITIONS = [
    "- EM: exact match of the greedy generation with the reference answer (surrounding whitespace ignored).",
    "- final: the last evaluation of a run (at its last step); best: the best evaluation of the run.",
    "- final train loss, gate entropy, max load, dead experts: the final window, the last 10% of the steps.",
    "- gate entropy: entropy (nats) of the renormalised top-k gates, token-weighted, averaged over layers;"
    " log k for uniform gates.",
    "- max load: the busiest expert's share of routed slots, averaged over layers (1/E uniform, 1/k at most).",
    "- dead experts: (layer, expert) pairs routed no token in the final window, summed over layers.",
    "- losses: mean cross-entropy (nats) per answer token; the untrained model's is the base model's.",
]


def _table_header(first: list[str]) -> str:
    names = first + [title for _, title in SCORE_COLUMNS]
    return _row(names) + "\n" + _row(["---"] * len(names))


def _baseline_row(name: str, em: float | None, loss: float | None) -> str:
    scores = [fmt_value(em), fmt_value(em), fmt_value(loss), fmt_value(loss)] + [DASH] * 4
    return _row([name, DASH, DASH, DASH, DASH, DASH, DASH, *scores])


def _run_header() -> str:
    names = [
        "variant",
        "seed",
        "status",
        "steps",
        "wall time",
        "final EM",
        "best EM",
        "final valid loss",
        "final train loss",
    ]
    return _row(names) + "\n" + _row(["---"] * len(names))


def _run_row(name: str, seed: str, run: dict[str, Any]) -> str:
    outcome, summary = run["outcome"], run["summary"]
    steps = run["train"]["step"][-1] if run["train"]["step"] else 0
    wall = outcome.get("wall_seconds")
    wall_text = (
        DASH if wall is None else f"{wall:.0f} s" + (" (resumed)" if outcome.get("resumed_from_step") else "")
    )
    status = outcome.get("status", "not run")
    cells = [f"`{name}`", seed, status, str(steps), wall_text]
    cells += [
        fmt_value(summary[k])
        for k in ("final_exact_match", "best_exact_match", "final_valid_loss", "final_train_loss")
    ]
    return _row(cells)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _inline(text: str) -> str:
    return text.replace("`", "'").replace("\n", "⏎")[:80]
