"""`run_comparison`: train every (variant, seed) of a comparison, then write the report.

<output_dir>/
    comparison.json   the comparison document and the data files' hashes (guards reuse)
    base_model.json   the untrained model's scores (cached for reruns)
    runs/<variant>/seed-<seed>/   one trainer output directory per run (see sweep.py)
    results.json      every run's curves and summaries, per-variant aggregates, baselines
    report.md, loss_curves.png, expert_load.png
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from core.compare.config import CompareConfig
from core.compare.progress import SweepProgress
from core.compare.report import render_report
from core.compare.results import aggregate_variant, collect_run, mean_expert_load
from core.compare.sweep import (
    RunPlan,
    SweepError,
    check_job,
    estimate_steps,
    execute,
    plan_runs,
    read_outcome,
)
from core.datasets import majority_class_baseline_file, read_jsonl
from core.jobs import JobSpec


@dataclass
class ComparisonResult:
    output_dir: Path
    report: Path
    results: Path
    figures: list[Path] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    missing_runs: list[str] = field(default_factory=list)


def run_comparison(
    config: CompareConfig,
    train_file: Path,
    valid_file: Path,
    output_dir: Path,
    *,
    device: str | None = None,
    cache_dir: Path | None = None,
    train_runs: bool = True,
    retry_failed: bool = False,
    keep_checkpoints: bool = False,
    stream: TextIO | None = None,
    interactive: bool | None = None,
) -> ComparisonResult:
    """Run the sweep (resuming what an earlier call left) and write `results.json`, `report.md` and the figures.

    Args:
        config: the validated comparison.
        train_file, valid_file: prompt/completion or chat JSONL files shared by every run.
        output_dir: receives the runs and the report; rerunning on it reuses finished runs.
        device: as the trainer: default CUDA when available, else CPU.
        cache_dir: where built-in base models are cached.
        train_runs: False only rebuilds the report from the runs already finished.
        retry_failed: retrain runs that failed before (from scratch) instead of reporting the failure.
        keep_checkpoints: keep `checkpoints/` of finished runs (by default only the final adapter stays).
        stream, interactive: where progress goes (stderr) and whether it is a terminal (auto).

    Raises:
        SweepError: `output_dir` holds runs of other data or of different job documents.
    """
    output_dir = Path(output_dir)
    data = _data_info(config, Path(train_file), Path(valid_file))
    _claim_directory(output_dir, config, data)
    plans = plan_runs(config, output_dir)
    for plan in plans:
        if plan.state() in ("done", "resumable"):
            check_job(plan)
    estimates = {(p.variant, p.seed): estimate_steps(p.spec, train_file) for p in plans}
    progress = SweepProgress(len(plans), sum(estimates.values()), stream=stream, interactive=interactive)
    try:
        progress.phase("evaluating the untrained model")
        untrained = _untrained_scores(plans[0].spec, Path(valid_file), output_dir, data, device, cache_dir)
        for plan in plans:
            state = plan.state()
            if state == "failed" and retry_failed and train_runs:
                shutil.rmtree(plan.directory)
                state = "new"
            if state == "done" or state == "failed" or not train_runs:
                progress.skip(
                    plan.variant, plan.seed, estimates[plan.variant, plan.seed], _skip_reason(plan, state)
                )
                continue
            _check_unchanged(data)
            execute(
                plan, train_file, valid_file, progress, planned_steps=estimates[plan.variant, plan.seed],
                device=device, cache_dir=cache_dir, keep_checkpoints=keep_checkpoints,
            )  # fmt: skip
        progress.phase("writing the report")
    finally:
        progress.close()
    return write_report(config, plans, data, untrained, output_dir)


def write_report(
    config: CompareConfig,
    plans: list[RunPlan],
    data: dict[str, Any],
    untrained: dict[str, Any],
    output_dir: Path,
) -> ComparisonResult:
    """Collect the runs on disk into `results.json`, `report.md`, `loss_curves.png` and `expert_load.png`."""
    from core.compare.plots import plot_expert_load, plot_loss_curves

    hp = plans[0].spec.hyperparameters
    majority = majority_class_baseline_file(Path(data["valid_file"]), hp.eval_max_examples)
    variants: dict[str, Any] = {}
    for name in config.variants:
        own = [p for p in plans if p.variant == name]
        runs = {str(p.seed): collect_run(p) for p in own}
        variants[name] = {
            "description": describe(own[0].spec),
            "moe": is_moe(own[0].spec),
            "runs": runs,
            "aggregates": aggregate_variant(runs.values()),
        }
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "data": data,
        "baselines": {"untrained": untrained, "majority_class": majority.to_dict()},
        "variants": variants,
        "best_moe_variant": _best_moe(variants),
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2))
    (output_dir / "report.md").write_text(render_report(results))
    succeeded = {
        name: [r for r in v["runs"].values() if r["outcome"].get("status") == "succeeded"]
        for name, v in variants.items()
    }
    figures = [plot_loss_curves(succeeded, untrained.get("valid_loss"), output_dir / "loss_curves.png")]
    best = results["best_moe_variant"]
    load = mean_expert_load(succeeded[best]) if best else None
    if best and load:
        title = f"{best}: final-window expert load, mean over {len(succeeded[best])} seed(s)"
        figures.append(plot_expert_load(load, title, output_dir / "expert_load.png"))
    every = [(n, s, r) for n, v in variants.items() for s, r in v["runs"].items()]
    return ComparisonResult(
        output_dir,
        output_dir / "report.md",
        output_dir / "results.json",
        figures,
        failed_runs=[f"{n}/seed-{s}" for n, s, r in every if r["outcome"].get("status") == "failed"],
        missing_runs=[f"{n}/seed-{s}" for n, s, r in every if not r["outcome"]],
    )


def describe(spec: JobSpec) -> dict[str, str]:
    """The variant's settings as table cells."""
    a, o, hp = spec.adapter, spec.optimizer, spec.hyperparameters
    moe = is_moe(spec)
    adapter = f"MoE-LoRA E={a.num_experts} k={a.top_k} r={a.rank}" if moe else f"LoRA r={a.rank}"
    optimizer = {"sgd": "SGD", "adamw": "AdamW"}[o.type] + (
        " + Riemannian" if o.preconditioner == "riemannian" else ""
    )
    router_lr = o.router_learning_rate
    return {
        "adapter": adapter,
        "optimizer": optimizer,
        "gate_strategy": f"{o.gate_strategy} (p={o.gate_grad_exponent:g})" if moe else "–",
        "learning_rate": f"{hp.learning_rate:g}",
        "router_learning_rate": ("= lr" if router_lr is None else f"{router_lr:g}") if moe else "–",
    }


def is_moe(spec: JobSpec) -> bool:
    """A mixture with a router (one-expert adapters have no gates to report)."""
    return spec.adapter.type == "moe_lora" and (spec.adapter.num_experts or 1) > 1


def _best_moe(variants: dict[str, Any]) -> str | None:
    """The MoE variant with the highest mean final EM (then the lowest mean final valid loss)."""

    def key(name: str) -> tuple[float, float]:
        agg = variants[name]["aggregates"]
        em, loss = agg["final_exact_match"]["mean"], agg["final_valid_loss"]["mean"]
        return (-(em if em is not None else -1.0), loss if loss is not None else float("inf"))

    moe = [n for n, v in variants.items() if v["moe"] and v["aggregates"]["final_valid_loss"]["n"] > 0]
    return min(moe, key=key) if moe else None


def _skip_reason(plan: RunPlan, state: str) -> str:
    if state == "done":
        return "done earlier, reused"
    if state == "failed":
        outcome = read_outcome(plan.directory)
        return f"failed earlier ({outcome.get('kind')}), not retried"
    return "not trained (report only)"


def _data_info(config: CompareConfig, train_file: Path, valid_file: Path) -> dict[str, Any]:
    limit = config.job(next(iter(config.variants)), config.seeds[0]).hyperparameters.eval_max_examples
    valid_examples = len(read_jsonl(valid_file))
    return {
        "train_file": str(train_file),
        "train_sha256": _sha256(train_file),
        "train_examples": len(read_jsonl(train_file)),
        "valid_file": str(valid_file),
        "valid_sha256": _sha256(valid_file),
        "valid_examples": valid_examples,
        "exact_match_examples": min(limit, valid_examples) if limit else valid_examples,
    }


def _check_unchanged(data: dict[str, Any]) -> None:
    """Every run must see the same bytes: refuse to go on if a data file was rewritten mid-sweep."""
    for which in ("train", "valid"):
        if _sha256(Path(data[f"{which}_file"])) != data[f"{which}_sha256"]:
            raise SweepError(f"{data[f'{which}_file']} changed during the sweep; the runs so far are kept")


def _claim_directory(output_dir: Path, config: CompareConfig, data: dict[str, Any]) -> None:
    """Record the comparison in `comparison.json`; refuse a directory whose runs used other data."""
    marker = output_dir / "comparison.json"
    if marker.is_file():
        previous = json.loads(marker.read_text())
        for key in ("train_sha256", "valid_sha256"):
            if previous["data"][key] != data[key]:
                which = key.split("_")[0]
                raise SweepError(
                    f"{output_dir} holds runs trained with another {which} file "
                    f"({previous['data'][which + '_file']}); use another --output-dir"
                )
    output_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"config": config.to_dict(), "data": data}, indent=2))


def _untrained_scores(
    spec: JobSpec,
    valid_file: Path,
    output_dir: Path,
    data: dict[str, Any],
    device: str | None,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """The base model's scores, cached in `base_model.json` under the settings that determine them."""
    from core.compare.baseline import evaluate_base_model, evaluation_key

    key = evaluation_key(spec) | {"valid_sha256": data["valid_sha256"]}
    cache = output_dir / "base_model.json"
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return dict(stored["scores"])
    scores = evaluate_base_model(spec, valid_file, device=device, cache_dir=cache_dir)
    cache.write_text(json.dumps({"key": key, "scores": scores}, indent=2))
    return scores


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
