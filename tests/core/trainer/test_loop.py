"""The training loop on a tiny local model: outputs, metrics, resume, stop, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.jobs import JobSpec
from core.trainer import JsonlSink, TrainingFailure, read_jsonl, train
from tests.core.trainer.conftest import job


def test_training_writes_adapter_checkpoints_metrics_and_resolved_job(
    tiny_model_dir, data_files, tmp_path
) -> None:
    train_file, valid_file = data_files
    spec = JobSpec.from_dict(job(tiny_model_dir))
    out = tmp_path / "run"
    result = train(spec, train_file, out, valid_file=valid_file, sink=JsonlSink(out))
    assert result.status == "succeeded" and result.steps == result.total_steps == 6
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]
    assert json.loads((out / "job.json").read_text()) == spec.to_dict()
    records = read_jsonl(out / "metrics.jsonl")
    steps = [r for r in records if "train_loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    first = steps[0]
    assert {"epoch", "learning_rate", "grad_norm", "tokens_seen", "routing", "preconditioner"} <= set(first)
    assert set(first["routing"]) == {
        f"model.layers.{i}.self_attn.{m}" for i in range(2) for m in ("q_proj", "v_proj")
    }
    for layer in first["routing"].values():
        assert sum(layer["expert_load"]) == pytest.approx(1.0) and len(layer["expert_load"]) == 4
        assert layer["tokens"] > 0 and 0 <= layer["dead_experts"] < 4
    assert first["preconditioner"]["steps"] == 1 and first["preconditioner"]["solver_failures"] == 0
    assert steps[-1]["tokens_seen"] > first["tokens_seen"] > 0
    assert steps[-1]["learning_rate"] < first["learning_rate"]  # linear decay
    evals = [r for r in records if "valid_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert {"valid_mean_token_accuracy", "valid_exact_match"} <= set(evals[0])
    events = [e["type"] for e in read_jsonl(out / "events.jsonl")]
    assert events[0] == "started" and events[-1] == "completed" and events.count("checkpoint") == 2


def adapter_tensors(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "adapter_model.safetensors"))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_ten_straight_steps_equal_five_then_resume_then_five(
    tiny_model_dir, data_files, tmp_path, optimizer
) -> None:
    train_file, _ = data_files
    doc = job(
        tiny_model_dir,
        hyperparameters={
            "max_steps": 10,
            "checkpoint_every": 5,
            "gradient_accumulation_steps": 2,
            "batch_size": 2,
            "warmup_ratio": 0.2,
            "lr_scheduler": "cosine",
        },
        optimizer={"type": optimizer, "momentum": 0.9 if optimizer == "sgd" else 0.0},
        adapter={"dropout": 0.2},
    )
    spec = JobSpec.from_dict(doc)
    straight = train(spec, train_file, tmp_path / "straight")
    assert straight.status == "succeeded" and straight.steps == 10
    polls = iter(range(100))
    stopped = train(
        spec,
        train_file,
        tmp_path / "split",
        should_stop=lambda: next(polls) >= 5,
        sink=JsonlSink(tmp_path / "split"),
    )
    assert stopped.status == "stopped" and stopped.steps == 5 and stopped.adapter_dir is None
    assert stopped.last_checkpoint is not None and stopped.last_checkpoint.name == "step-00000005"
    resumed = train(spec, train_file, tmp_path / "split", sink=JsonlSink(tmp_path / "split"))
    assert resumed.status == "succeeded" and resumed.steps == 10
    a, b = adapter_tensors(tmp_path / "straight" / "adapter"), adapter_tensors(tmp_path / "split" / "adapter")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_jsonl(tmp_path / "split" / "metrics.jsonl") if "train_loss" in r]
    assert steps == list(range(1, 11))
    events = [e["type"] for e in read_jsonl(tmp_path / "split" / "events.jsonl")]
    assert "stopped" in events and "resumed" in events


def test_resume_after_a_crash_drops_the_metrics_logged_after_the_checkpoint(
    tiny_model_dir, data_files, tmp_path
) -> None:
    train_file, _ = data_files
    spec = JobSpec.from_dict(job(tiny_model_dir, hyperparameters={"max_steps": 6, "checkpoint_every": 3}))

    def crash(progress) -> None:
        if progress.step == 5:
            raise RuntimeError("worker lost")

    with pytest.raises(TrainingFailure, match="worker lost"):
        train(spec, train_file, tmp_path / "run", sink=JsonlSink(tmp_path / "run"), progress=crash)
    result = train(spec, train_file, tmp_path / "run", sink=JsonlSink(tmp_path / "run"))
    assert result.steps == 6
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "train_loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_loss_falls_on_a_learnable_task(tiny_model_dir, tmp_path) -> None:
    from tests.core.trainer.conftest import write_examples

    train_file = write_examples(tmp_path / "t.jsonl", 16)
    spec = JobSpec.from_dict(
        job(
            tiny_model_dir,
            hyperparameters={
                "max_steps": 24,
                "learning_rate": 0.05,
                "checkpoint_every": 100,
                "eval_every": 100,
            },
            optimizer={"type": "adamw", "router_learning_rate": 0.001},
            adapter={"target_modules": ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]},
        )
    )
    losses = []
    train(spec, train_file, tmp_path / "run", progress=lambda p: losses.append(p.loss))
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4


def test_bad_training_file_fails_as_bad_data_naming_the_line(tiny_model_dir, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(TrainingFailure) as info:
        train(JobSpec.from_dict(job(tiny_model_dir)), bad, tmp_path / "run")
    assert info.value.kind == "bad_data" and "line 2" in info.value.message


def test_divergence_fails_as_nonfinite_loss(tiny_model_dir, data_files, tmp_path) -> None:
    spec = JobSpec.from_dict(
        job(
            tiny_model_dir,
            hyperparameters={"learning_rate": 1e30, "max_steps": 4},
            optimizer={"damping": 0.0},
        )
    )
    with pytest.raises(TrainingFailure) as info:
        train(spec, data_files[0], tmp_path / "run")
    assert info.value.kind == "nonfinite_loss"


def test_plain_lora_trains_and_saves_a_peft_adapter(tiny_model_dir, data_files, tmp_path) -> None:
    spec = JobSpec.from_dict(
        job(tiny_model_dir, adapter={"type": "lora", "num_experts": None, "top_k": None})
    )
    result = train(spec, data_files[0], tmp_path / "run", sink=JsonlSink(tmp_path / "run"))
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["peft_type"] == "LORA"
    record = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    assert "routing" not in record and record["preconditioner"]["steps"] == 1


def test_gradient_checkpointing_gives_the_same_adapter(tiny_model_dir, data_files, tmp_path) -> None:
    adapters = []
    for checkpointing in (False, True):
        spec = JobSpec.from_dict(job(tiny_model_dir, hyperparameters={"max_steps": 3, "gradient_checkpointing": checkpointing},
                                     adapter={"dropout": 0.0}))  # fmt: skip
        result = train(spec, data_files[0], tmp_path / f"run-{checkpointing}")
        adapters.append(adapter_tensors(result.adapter_dir))
    for name, tensor in adapters[0].items():
        torch.testing.assert_close(adapters[1][name], tensor, rtol=1e-5, atol=1e-7)
