"""SmolLM2-135M-Instruct fine-tuned for a few steps on a slice of SST-2: the loss falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.jobs import JobSpec
from core.trainer import JsonlSink, read_jsonl, train

SST2 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sst2" / "train.jsonl"


def sst2_slice(path: Path, n: int) -> Path:
    words = {0: "negative", 1: "positive"}
    rows = []
    with SST2.open() as f:
        for line, _ in zip(f, range(n), strict=False):
            row = json.loads(line)
            prompt = f"Review: {row['text'].strip()}\nIs this review positive or negative?"
            rows.append({"prompt": prompt, "completion": words[row["label"]]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
@pytest.mark.skipif(not SST2.exists(), reason="shared/data is not beside the checkout")
def test_smollm2_moe_lora_loss_falls_on_sst2(tmp_path: Path) -> None:
    train_file = sst2_slice(tmp_path / "train.jsonl", 48)
    spec = JobSpec.from_dict({
        "model": "smollm2-135m-instruct",
        "seed": 1,
        "hyperparameters": {"max_steps": 12, "batch_size": 4, "learning_rate": 2e-3, "max_seq_length": 96,
                            "checkpoint_every": 12, "lr_scheduler": "constant"},
        "adapter": {"num_experts": 8, "top_k": 2, "rank": 4, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        "optimizer": {"type": "adamw", "preconditioner": "riemannian", "gate_strategy": "gate_rescaled",
                      "router_learning_rate": 1e-4},
    })  # fmt: skip
    result = train(spec, train_file, tmp_path / "run", sink=JsonlSink(tmp_path / "run"))
    losses = [r["train_loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert result.status == "succeeded" and len(losses) == 12
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:2]) / 2, losses
