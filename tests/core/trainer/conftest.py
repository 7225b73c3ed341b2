"""A tiny local model directory and small prompt/completion files for trainer tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import save_tiny_model

QUESTIONS = [
    ("Is the movie great?", "A"),
    ("Is the film terrible?", "B"),
    ("great movie, positive?", "A"),
    ("terrible film, negative?", "B"),
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def write_examples(path: Path, n: int, offset: int = 0) -> Path:
    rows = []
    for i in range(n):
        q, a = QUESTIONS[(i + offset) % len(QUESTIONS)]
        rows.append({"prompt": f"{q} ({i})", "completion": a})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_examples(tmp_path / "train.jsonl", 12), write_examples(tmp_path / "valid.jsonl", 4, offset=1)


def job(model_dir: Path, **overrides: object) -> dict:
    hp = {
        "max_steps": 6,
        "batch_size": 4,
        "learning_rate": 0.05,
        "checkpoint_every": 3,
        "eval_every": 3,
        "max_seq_length": 64,
        "eval_max_new_tokens": 4,
    }
    hp |= overrides.pop("hyperparameters", {})  # type: ignore[arg-type]
    doc = {
        "model": str(model_dir),
        "seed": 7,
        "hyperparameters": hp,
        "adapter": {"num_experts": 4, "top_k": 2, "rank": 2, "target_modules": ["q_proj", "v_proj"]},
        "optimizer": {"type": "sgd", "router_learning_rate": 0.01},
    }
    for key, value in overrides.items():
        doc[key] = value if not isinstance(value, dict) else {**doc.get(key, {}), **value}  # type: ignore[dict-item]
    return doc
