"""The untrained model's scores: the base model evaluated exactly as the trainer evaluates a run.

A fresh MoE-LoRA adapter is the identity (every B is zero, see method.md section 1) and
evaluation runs without dropout, so the base model alone gives the scores of step 0 of every
variant. This module loads it as the trainer does (`resolve_model`, the job's dtype and device
rules) and runs the trainer's own `evaluate_loss` and `evaluate_exact_match` on the same
examples: the whole validation file for the loss, its first `eval_max_examples` for exact match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.data import PaddingCollator, eval_examples, load_examples, tokenize_examples
from core.jobs import JobSpec
from core.models import resolve_model
from core.trainer.evaluate import evaluate_exact_match, evaluate_loss


def evaluation_key(spec: JobSpec) -> dict[str, Any]:
    """The settings that determine the untrained scores (for caching them next to a sweep)."""
    hp = spec.hyperparameters
    return {
        "model": spec.model,
        "dtype": spec.dtype,
        "max_seq_length": hp.max_seq_length,
        "truncation": hp.truncation,
        "eval_max_examples": hp.eval_max_examples,
        "eval_max_new_tokens": hp.eval_max_new_tokens,
    }


@torch.no_grad()
def evaluate_base_model(
    spec: JobSpec,
    valid_file: Path,
    *,
    device: str | torch.device | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """`valid_loss`, `valid_mean_token_accuracy`, `valid_exact_match` (and a few generations) of `spec.model`
    without an adapter.

    Args:
        spec: a job of the comparison (its model, dtype and evaluation settings are used).
        valid_file: the validation JSONL file of the comparison.
        device: as the trainer: default CUDA when available, else CPU.
        cache_dir: where built-in base models are cached.
    """
    hp = spec.hyperparameters
    if device is None and torch.cuda.is_available():
        device = "cuda:0"
    loaded = resolve_model(
        spec.model, dtype=None if spec.dtype == "auto" else spec.dtype, device=device, cache_dir=cache_dir
    )
    examples = load_examples(valid_file)
    dataset = tokenize_examples(examples, loaded.tokenizer, hp.max_seq_length, hp.truncation)
    limit = hp.eval_max_examples
    scored = eval_examples(examples[:limit] if limit else examples, loaded.tokenizer)
    collator = PaddingCollator.from_tokenizer(loaded.tokenizer)
    result: dict[str, Any] = evaluate_loss(loaded.model, dataset, collator, hp.batch_size, loaded.device)
    result |= evaluate_exact_match(
        loaded.model, loaded.tokenizer, scored, hp.eval_max_new_tokens, loaded.device, hp.batch_size
    )
    return result
