"""The comparison tool end to end on a tiny model: 2 variants x 2 seeds x 4 steps, then reruns."""

from __future__ import annotations

import io
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from core.compare import CompareConfig, SweepError, run_comparison
from core.compare.report import SCORE_COLUMNS
from core.datasets import majority_class_baseline_file
from core.trainer import read_jsonl
from tests.core.compare.conftest import compare_doc

SCORE_KEYS = {
    "final_exact_match": lambda evals, steps: evals[-1]["valid_exact_match"],
    "best_exact_match": lambda evals, steps: max(r["valid_exact_match"] for r in evals),
    "final_valid_loss": lambda evals, steps: evals[-1]["valid_loss"],
    "best_valid_loss": lambda evals, steps: min(r["valid_loss"] for r in evals),
    "final_train_loss": lambda evals, steps: steps[-1]["train_loss"],  # 10% of 4 steps: the last one
    "gate_entropy": lambda evals, steps: statistics.fmean(
        s["gate_entropy"] for s in steps[-1]["routing"].values()
    ),
    "max_load": lambda evals, steps: statistics.fmean(
        max(s["expert_load"]) for s in steps[-1]["routing"].values()
    ),
    "dead_experts": lambda evals, steps: sum(s["dead_experts"] for s in steps[-1]["routing"].values()),
}


@pytest.fixture(scope="module")
def sweep(
    tiny_model_dir: Path, data_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("compare")
    config = CompareConfig.from_dict(compare_doc(tiny_model_dir))
    stream = io.StringIO()
    result = run_comparison(config, *data_files, out, stream=stream, interactive=False, keep_checkpoints=True)
    return {"out": out, "config": config, "result": result, "log": stream.getvalue()}


def table_rows(report: str) -> dict[str, list[str]]:
    """The score table's rows by first cell (backticks removed)."""
    section = report.split("## Scores")[1].split("## Runs")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip("`"): cells for cells in (line.strip("| ").split(" | ") for line in rows[1:])}


def parse_cell(cell: str) -> tuple[float, float | None]:
    mean, _, std = cell.partition(" ± ")
    return float(mean), float(std) if std else None


def test_the_sweep_writes_every_run_and_the_report_files(sweep: dict[str, Any]) -> None:
    out, result = sweep["out"], sweep["result"]
    for variant in ("classic", "rescaled"):
        for seed in (1, 2):
            run = out / "runs" / variant / f"seed-{seed}"
            assert (run / "adapter" / "adapter_model.safetensors").is_file()
            assert json.loads((run / "job.json").read_text())["seed"] == seed
            assert json.loads((run / "run.json").read_text())["status"] == "succeeded"
    for name in ("report.md", "results.json", "comparison.json", "base_model.json"):
        assert (out / name).is_file()
    for figure in ("loss_curves.png", "expert_load.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.figures == [out / "loss_curves.png", out / "expert_load.png"]
    assert result.failed_runs == [] and result.missing_runs == []
    assert sweep["log"].count("starting") == 4 and "writing the report" in sweep["log"]


def test_report_numbers_match_the_runs_metrics_files(sweep: dict[str, Any]) -> None:
    out = sweep["out"]
    results = json.loads((out / "results.json").read_text())
    rows = table_rows((out / "report.md").read_text())
    titles = [title for _, title in SCORE_COLUMNS]
    for variant in ("classic", "rescaled"):
        per_seed: dict[str, list[float]] = {key: [] for key in SCORE_KEYS}
        for metrics in sorted((out / "runs" / variant).glob("seed-*/metrics.jsonl")):
            records = read_jsonl(metrics)
            evals = [r for r in records if "valid_loss" in r]
            steps = [r for r in records if "train_loss" in r]
            assert [r["step"] for r in evals] == [2, 4] and [r["step"] for r in steps] == [1, 2, 3, 4]
            for key, compute in SCORE_KEYS.items():
                per_seed[key].append(float(compute(evals, steps)))
        assert all(len(v) == 2 for v in per_seed.values())
        row = rows[variant]
        for key, values in per_seed.items():
            mean, std = statistics.fmean(values), statistics.stdev(values)
            agg = results["variants"][variant]["aggregates"][key]
            assert agg["values"] == pytest.approx(values, rel=1e-12)
            assert agg["mean"] == pytest.approx(mean, rel=1e-12) and agg["std"] == pytest.approx(
                std, rel=1e-12, abs=1e-15
            )
            shown_mean, shown_std = parse_cell(row[7 + titles.index(dict(SCORE_COLUMNS)[key])])
            assert shown_mean == pytest.approx(mean, abs=5.1e-5) and shown_std == pytest.approx(
                std, abs=5.1e-5
            )
        assert row[6] == "2/2"


def test_report_has_untrained_and_majority_rows_on_the_scored_examples(
    sweep: dict[str, Any], data_files: tuple[Path, Path]
) -> None:
    out = sweep["out"]
    results = json.loads((out / "results.json").read_text())
    untrained = json.loads((out / "base_model.json").read_text())["scores"]
    assert results["baselines"]["untrained"] == untrained
    assert {"valid_loss", "valid_exact_match", "valid_mean_token_accuracy"} <= set(untrained)
    majority = majority_class_baseline_file(data_files[1], limit=4)  # eval_max_examples
    assert results["baselines"]["majority_class"]["accuracy"] == majority.accuracy
    rows = table_rows((out / "report.md").read_text())
    em, loss = float(rows["untrained model"][7]), float(rows["untrained model"][9])
    assert em == pytest.approx(untrained["valid_exact_match"], abs=5.1e-5)
    assert loss == pytest.approx(untrained["valid_loss"], abs=5.1e-5)
    (label,) = [name for name in rows if name.startswith("majority class")]
    assert f"`{majority.completion}`" in label and float(rows[label][7]) == pytest.approx(
        majority.accuracy, abs=5.1e-5
    )


def test_every_variant_sees_the_same_batches_for_a_seed(sweep: dict[str, Any]) -> None:
    def tokens(variant: str, seed: int) -> list[int]:
        records = read_jsonl(sweep["out"] / "runs" / variant / f"seed-{seed}" / "metrics.jsonl")
        return [r["tokens_seen"] for r in records if "train_loss" in r]

    assert tokens("classic", 1) == tokens("rescaled", 1)
    assert tokens("classic", 2) == tokens("rescaled", 2)
    assert tokens("classic", 1) != tokens("classic", 2)


def test_a_rerun_reuses_finished_runs_without_training(
    sweep: dict[str, Any], data_files: tuple[Path, Path]
) -> None:
    out = sweep["out"]
    before = {p: p.read_bytes() for p in out.glob("runs/*/seed-*/metrics.jsonl")}
    stream = io.StringIO()
    run_comparison(sweep["config"], *data_files, out, stream=stream, interactive=False)
    assert stream.getvalue().count("done earlier, reused") == 4 and "starting" not in stream.getvalue()
    assert {p: p.read_bytes() for p in before} == before


def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(
    sweep: dict[str, Any], data_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(sweep["out"], out)
    run = out / "runs" / "rescaled" / "seed-2"
    shutil.rmtree(run / "adapter")
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    (run / "run.json").unlink()
    stream = io.StringIO()
    run_comparison(sweep["config"], *data_files, out, stream=stream, interactive=False)
    assert "rescaled seed 2: resuming at step 2" in stream.getvalue()
    assert stream.getvalue().count("starting") == 0
    original = read_jsonl(sweep["out"] / "runs" / "rescaled" / "seed-2" / "metrics.jsonl")
    resumed = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in original]
    assert [r.get("train_loss") for r in resumed] == pytest.approx(
        [r.get("train_loss") for r in original], rel=1e-6
    )
    assert json.loads((run / "run.json").read_text())["resumed_from_step"] == 2
    assert not (run / "checkpoints").exists()  # finished runs keep only the adapter by default


def test_a_changed_job_or_data_is_refused_on_the_same_directory(
    sweep: dict[str, Any], tiny_model_dir: Path, data_files: tuple[Path, Path], tmp_path: Path
) -> None:
    doc = compare_doc(tiny_model_dir)
    doc["variants"]["classic"]["hyperparameters"] = {"learning_rate": 0.07}
    with pytest.raises(SweepError, match="different job document"):
        run_comparison(CompareConfig.from_dict(doc), *data_files, sweep["out"], stream=io.StringIO())
    other = tmp_path / "valid.jsonl"
    other.write_text(data_files[1].read_text() + json.dumps({"prompt": "x?", "completion": "A"}) + "\n")
    with pytest.raises(SweepError, match="another valid file"):
        run_comparison(sweep["config"], data_files[0], other, sweep["out"], stream=io.StringIO())


def test_a_data_file_rewritten_mid_sweep_stops_the_sweep(
    sweep: dict[str, Any], data_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.compare.tool as tool

    train = tmp_path / "train.jsonl"
    shutil.copy(data_files[0], train)
    real_execute = tool.execute

    def execute_then_edit(*args: Any, **kwargs: Any) -> dict[str, Any]:
        outcome = real_execute(*args, **kwargs)
        train.write_text(train.read_text() + json.dumps({"prompt": "new?", "completion": "B"}) + "\n")
        return outcome

    monkeypatch.setattr(tool, "execute", execute_then_edit)
    with pytest.raises(SweepError, match="changed during the sweep"):
        run_comparison(sweep["config"], train, data_files[1], tmp_path / "out", stream=io.StringIO())
    assert len(list((tmp_path / "out" / "runs").glob("*/seed-*/adapter"))) == 1
