"""A tiny local model, small prompt/completion files and a two-variant comparison document."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.core.trainer.conftest import write_examples
from tests.support import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return write_examples(root / "train.jsonl", 12), write_examples(root / "valid.jsonl", 5, offset=1)


def compare_doc(model_dir: Path, **variants: dict[str, Any]) -> dict[str, Any]:
    """Two seeds, 4 SGD steps of batch 4 with evaluations at steps 2 and 4; `variants` override the default pair."""
    base = {
        "model": str(model_dir),
        "hyperparameters": {
            "max_steps": 4,
            "batch_size": 4,
            "learning_rate": 0.05,
            "eval_every": 2,
            "checkpoint_every": 2,
            "max_seq_length": 64,
            "eval_max_examples": 4,
            "eval_max_new_tokens": 4,
        },
        "adapter": {"num_experts": 4, "top_k": 2, "rank": 2, "target_modules": ["q_proj", "v_proj"]},
        "optimizer": {"type": "sgd", "router_learning_rate": 0.01},
    }
    pair = {
        "classic": {"optimizer": {"gate_strategy": "classic"}},
        "rescaled": {"optimizer": {"gate_strategy": "gate_rescaled"}},
    }
    return {"seeds": [1, 2], "base": copy.deepcopy(base), "variants": variants or pair}
