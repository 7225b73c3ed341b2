"""Planning and running the (variant, seed) runs of a comparison, resumably.

    <output_dir>/runs/<variant>/seed-<seed>/
        job.json, metrics.jsonl, events.jsonl, adapter/, checkpoints/   (the trainer's)
        run.json                                                         (this module's outcome)

A run whose adapter exists is done and reused; one with a checkpoint resumes from it through
the trainer's resume; one that failed is skipped unless retried (a diverged run would diverge
again). A reused or resumed run must have been started from the identical job document.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.compare.config import CompareConfig
from core.compare.progress import SweepProgress
from core.jobs import JobSpec

RunState = Literal["done", "failed", "resumable", "new"]


class SweepError(RuntimeError):
    """The output directory holds results that do not belong to this comparison."""


@dataclass(frozen=True)
class RunPlan:
    """One training run of the sweep."""

    variant: str
    seed: int
    spec: JobSpec
    directory: Path

    @property
    def outcome_file(self) -> Path:
        return self.directory / "run.json"

    def state(self) -> RunState:
        """Where this run stands on disk."""
        from core.trainer.state import latest_checkpoint

        if (self.directory / "adapter" / "adapter_model.safetensors").is_file():
            return "done"
        if self.outcome_file.is_file() and read_outcome(self.directory).get("status") == "failed":
            return "failed"
        return "resumable" if latest_checkpoint(self.directory) is not None else "new"

    def steps_done(self) -> int:
        """Optimizer steps of the newest checkpoint (0 without one)."""
        from core.trainer.state import latest_checkpoint

        checkpoint = latest_checkpoint(self.directory)
        if checkpoint is None:
            return 0
        return int(json.loads((checkpoint / "trainer_state.json").read_text())["step"])


def run_directory(output_dir: Path, variant: str, seed: int) -> Path:
    return output_dir / "runs" / variant / f"seed-{seed}"


def plan_runs(config: CompareConfig, output_dir: Path) -> list[RunPlan]:
    """Every run, seeds outermost: after the first seed every variant has a result to look at."""
    return [
        RunPlan(variant, seed, config.job(variant, seed), run_directory(output_dir, variant, seed))
        for seed in config.seeds
        for variant in config.variants
    ]


def estimate_steps(spec: JobSpec, train_file: Path) -> int:
    """`max_steps`, else epochs x steps per epoch from the file's line count (the trainer corrects it)."""
    hp = spec.hyperparameters
    if hp.max_steps:
        return hp.max_steps
    with Path(train_file).open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return hp.n_epochs * math.ceil(math.ceil(lines / hp.batch_size) / hp.gradient_accumulation_steps)


def check_job(plan: RunPlan) -> None:
    """Refuse to reuse or resume a run that was started from a different job document."""
    stored = plan.directory / "job.json"
    if not stored.is_file():
        return
    expected = json.loads(json.dumps(plan.spec.to_dict()))
    if json.loads(stored.read_text()) != expected:
        raise SweepError(
            f"{plan.directory} was trained from a different job document than variant {plan.variant!r} "
            "now gives: use another --output-dir, or delete that run directory to retrain it"
        )


def read_outcome(directory: Path) -> dict[str, Any]:
    path = directory / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def execute(
    plan: RunPlan,
    train_file: Path,
    valid_file: Path,
    progress: SweepProgress,
    *,
    planned_steps: int,
    device: str | None = None,
    cache_dir: Path | None = None,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train one run (fresh or resumed) and record its outcome in `run.json`; failures are recorded, not raised."""
    from core.trainer import JsonlSink, TrainingFailure, train

    done = plan.steps_done()
    if done == 0:
        _clear(plan.directory)  # an attempt interrupted before its first checkpoint left only stale logs
    progress.start(plan.variant, plan.seed, planned_steps, done)
    started = time.perf_counter()
    outcome: dict[str, Any]
    try:
        result = train(
            plan.spec,
            train_file,
            plan.directory,
            valid_file=valid_file,
            sink=JsonlSink(plan.directory),
            progress=lambda p: progress.step(p.step, p.total_steps, p.loss),
            resume=True,
            device=device,
            cache_dir=cache_dir,
        )
        outcome = {"status": result.status, "steps": result.steps, "total_steps": result.total_steps}
    except TrainingFailure as failure:
        outcome = {"status": "failed", "kind": failure.kind, "message": failure.message}
    outcome |= {"resumed_from_step": done, "wall_seconds": time.perf_counter() - started}
    plan.outcome_file.parent.mkdir(parents=True, exist_ok=True)
    plan.outcome_file.write_text(json.dumps(outcome, indent=2))
    if outcome["status"] == "succeeded" and not keep_checkpoints:
        shutil.rmtree(plan.directory / "checkpoints", ignore_errors=True)
    progress.finish(_describe(outcome))
    _release_memory()
    return outcome


def _describe(outcome: dict[str, Any]) -> str:
    if outcome["status"] == "failed":
        return f"FAILED ({outcome['kind']}): {outcome['message']}"
    return f"{outcome['status']} after {outcome['steps']} steps in {outcome['wall_seconds']:.0f}s"


def _clear(directory: Path) -> None:
    for name in ("metrics.jsonl", "events.jsonl", "run.json"):
        (directory / name).unlink(missing_ok=True)


def _release_memory() -> None:
    """Free the finished run's model before the next one loads (matters on a GPU)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
