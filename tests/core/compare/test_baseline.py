"""The untrained model's scores equal step 0 of any variant: a fresh adapter is the identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.compare import CompareConfig
from core.compare.baseline import evaluate_base_model
from core.data import PaddingCollator, eval_examples, load_examples, tokenize_examples
from core.inject import add_moe_lora
from core.models import resolve_model
from core.trainer.evaluate import evaluate_exact_match, evaluate_loss
from tests.core.compare.conftest import compare_doc


def test_base_model_scores_equal_those_of_the_model_with_a_fresh_adapter(
    tiny_model_dir: Path, data_files: tuple[Path, Path]
) -> None:
    spec = CompareConfig.from_dict(compare_doc(tiny_model_dir)).job("rescaled", 1)
    valid = data_files[1]
    scores = evaluate_base_model(spec, valid, device="cpu")
    assert scores["valid_exact_match_samples"] and 0.0 <= scores["valid_exact_match"] <= 1.0

    loaded = resolve_model(spec.model, device="cpu")
    add_moe_lora(loaded.model, spec.adapter_config())
    examples = load_examples(valid)
    hp = spec.hyperparameters
    dataset = tokenize_examples(examples, loaded.tokenizer, hp.max_seq_length, hp.truncation)
    collator = PaddingCollator.from_tokenizer(loaded.tokenizer)
    adapted = evaluate_loss(loaded.model, dataset, collator, hp.batch_size, loaded.device)
    scored = eval_examples(examples[: hp.eval_max_examples], loaded.tokenizer)
    adapted |= evaluate_exact_match(
        loaded.model, loaded.tokenizer, scored, hp.eval_max_new_tokens, loaded.device
    )
    assert len(scored) == 4 < len(examples)  # exact match on the first eval_max_examples only
    assert scores["valid_loss"] == pytest.approx(adapted["valid_loss"], rel=1e-6)
    assert scores["valid_mean_token_accuracy"] == adapted["valid_mean_token_accuracy"]
    assert scores["valid_exact_match"] == adapted["valid_exact_match"]
    assert scores["valid_exact_match_samples"] == adapted["valid_exact_match_samples"]
