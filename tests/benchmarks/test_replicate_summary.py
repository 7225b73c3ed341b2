"""`benchmarks/replicate/summary.py`: paired per-seed differences and the per-variant table."""

from __future__ import annotations

from typing import Any

from benchmarks.replicate.summary import paired, render_summary


def _run(em: float, valid: float, train: list[float], status: str = "succeeded") -> dict[str, Any]:
    return {
        "outcome": {"status": status, "wall_seconds": 60.0},
        "summary": {"final_exact_match": em, "final_valid_loss": valid},
        "train": {"train_loss": train},
    }


def _agg(mean: float, std: float | None = None) -> dict[str, Any]:
    return {"mean": mean, "std": std}


def _variant(runs: dict[str, dict[str, Any]], entropy: float, load: float) -> dict[str, Any]:
    keys = ("final_exact_match", "best_exact_match", "final_valid_loss", "final_train_loss")
    aggregates = {k: _agg(0.5, 0.1) for k in keys} | {"gate_entropy": _agg(entropy), "max_load": _agg(load)}
    return {"runs": runs, "aggregates": aggregates}


def _results() -> dict[str, Any]:
    return {
        "variants": {
            "sgd-classic": _variant(
                {
                    "1": _run(0.5, 0.40, [1.0, 0.6]),
                    "2": _run(0.6, 0.30, [1.0, 0.4]),
                    "3": _run(0.7, 0.2, [1.0]),
                },
                2.3026,
                0.0961,
            ),
            "sgd-gate_rescaled": _variant(
                {
                    "1": _run(0.75, 0.25, [0.8, 0.4]),
                    "2": _run(0.5, 0.35, [1.0, 0.2]),
                    "3": _run(0.9, 0.1, [0.5], status="failed"),
                },
                2.2,
                0.1,
            ),
        },
        "baselines": {
            "untrained": {"valid_exact_match": 0.25, "valid_loss": 1.5},
            "majority_class": {"accuracy": 0.3},
        },
    }


def test_paired_differences_use_only_seeds_where_both_runs_succeeded() -> None:
    results = _results()
    em = paired(results, "sgd-gate_rescaled", "sgd-classic", "final_exact_match", higher=True)
    assert em is not None
    mean, better, n = em
    assert n == 2 and better == 1 and abs(mean - (0.25 - 0.1) / 2) < 1e-12
    loss = paired(results, "sgd-gate_rescaled", "sgd-classic", "mean_train_loss", higher=False)
    assert loss is not None and loss[1:] == (2, 2) and abs(loss[0] - (-0.2 + -0.1) / 2) < 1e-12
    assert paired(results, "sgd-gate_rescaled", "sgd-lora", "final_exact_match", higher=True) is None


def test_summary_lists_scores_routing_and_baselines_per_task_and_group() -> None:
    text = render_summary(
        "cpu", {"sst2": {"sgd-router_frozen": _results()}}, {"sst2/sgd-router_frozen": 90.0}
    )
    assert "## sst2" in text and "gate entropy | max load |" in text
    row = next(line for line in text.splitlines() if "`sgd-classic`" in line)
    assert row.endswith("| 2.3026 | 0.0961 |")
    assert "| sgd-router_frozen | untrained / majority | 0.2500 / 0.3000 | | 1.5000 | | | |" in text
    assert "| sgd-router_frozen | gate_rescaled vs classic | final EM | +0.0750 | 1/2 seeds |" in text
    assert "- sst2/sgd-router_frozen: 6 runs, 6.0 min of runs; this invocation 1.5 min" in text
    assert "- total: 6.0 min of runs; this invocation 1.5 min" in text
