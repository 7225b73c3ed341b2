"""`moetune compare`: exit status, failed runs in the report, report-only, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.compare import main
from tests.core.compare.conftest import compare_doc


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_a_diverging_variant_is_reported_as_failed_and_the_exit_status_is_1(
    tiny_model_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = compare_doc(
        tiny_model_dir,
        ok={"optimizer": {"gate_strategy": "gate_rescaled"}},
        wild={"hyperparameters": {"learning_rate": 1e30}, "optimizer": {"preconditioner": "none"}},
    )
    doc["seeds"] = [1]
    config = write_config(tmp_path / "c.json", doc)
    out = tmp_path / "out"
    argv = [
        "--config",
        str(config),
        "--train-file",
        str(data_files[0]),
        "--valid-file",
        str(data_files[1]),
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 1
    assert "failed runs: wild/seed-1" in capsys.readouterr().err
    outcome = json.loads((out / "runs" / "wild" / "seed-1" / "run.json").read_text())
    assert outcome["status"] == "failed" and outcome["kind"] == "nonfinite_loss"
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and "`wild` seed 1: nonfinite_loss" in report
    results = json.loads((out / "results.json").read_text())
    assert results["variants"]["wild"]["aggregates"]["final_valid_loss"]["n"] == 0
    assert results["best_moe_variant"] == "ok"
    assert main(argv) == 1  # not retried: a diverged run would diverge again
    assert "failed earlier (nonfinite_loss), not retried" in capsys.readouterr().err


def test_report_only_trains_nothing_and_lists_the_missing_runs(
    tiny_model_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.json", compare_doc(tiny_model_dir))
    out = tmp_path / "out"
    argv = ["--config", str(config), "--train-file", str(data_files[0]), "--valid-file", str(data_files[1])]
    assert main([*argv, "--output-dir", str(out), "--report-only"]) == 0
    assert (
        "not trained yet: classic/seed-1, classic/seed-2, rescaled/seed-1, rescaled/seed-2"
        in capsys.readouterr().err
    )
    assert not (out / "runs").exists() and (out / "report.md").is_file()
    assert "| `classic` | 1 | not run |" in (out / "report.md").read_text()


def test_an_invalid_document_exits_2_naming_the_variant_and_field(
    tiny_model_dir: Path, data_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = compare_doc(tiny_model_dir, good={}, bad={"optimizer": {"type": "lion"}})
    config = write_config(tmp_path / "c.json", doc)
    argv = ["--config", str(config), "--train-file", str(data_files[0]), "--valid-file", str(data_files[1])]
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    assert "variant 'bad': optimizer.type: expected one of" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    argv[3] = str(tmp_path / "missing.jsonl")
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    assert "--train-file" in capsys.readouterr().err
