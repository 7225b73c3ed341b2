"""Evaluation on the validation file: loss, mean token accuracy, and exact match of greedy
generations against the reference answers (the paper's metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from core.data import IGNORE_INDEX, EvalExample, TokenizedDataset, exact_match
from core.data.collate import PaddingCollator


def token_loss_sums(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(sum of token losses, number of label tokens, number of correct argmax tokens).

    logits: [B, L, V]; labels: [B, L], aligned with the inputs (shifted here).
    """
    logits = logits[:, :-1].float()  # [B, L-1, V]; float32: bf16 log-softmax loses the small probabilities
    target = labels[:, 1:]  # [B, L-1]
    mask = target != IGNORE_INDEX
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum")
    correct = ((logits.argmax(-1) == target) & mask).sum()
    return loss, mask.sum(), correct


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    dataset: TokenizedDataset,
    collator: PaddingCollator,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Token-weighted validation loss and mean token accuracy."""
    was_training = model.training
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, n, c = token_loss_sums(logits, batch["labels"])
        loss_sum, tokens, correct = loss_sum + float(loss), tokens + int(n), correct + int(c)
    model.train(was_training)
    return {"valid_loss": loss_sum / max(tokens, 1), "valid_mean_token_accuracy": correct / max(tokens, 1)}


@torch.no_grad()
def generate_greedy(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    device: torch.device,
    batch_size: int = 8,
) -> list[str]:
    """Greedy completions of token-id prompts (left-padded batches, KV cache on), decoded."""
    was_training = model.training
    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(chunk):  # left padding: generation continues right after each prompt
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        generated = model.generate(  # type: ignore[operator]  # a transformers model
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row in generated[:, width:]:
            out.append(tokenizer.decode(row, skip_special_tokens=True))
    model.train(was_training)
    return out


def evaluate_exact_match(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[EvalExample],
    max_new_tokens: int,
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Fraction of greedy generations equal to their reference, and a few samples."""
    if not examples:
        return {}
    predictions = generate_greedy(
        model, tokenizer, [e.prompt_ids for e in examples], max_new_tokens, device, batch_size
    )
    hits = [exact_match(p, e.reference) for p, e in zip(predictions, examples, strict=True)]
    samples = [
        {"line": e.line, "prediction": p, "reference": e.reference}
        for p, e in zip(predictions[:3], examples, strict=False)
    ]
    return {"valid_exact_match": sum(hits) / len(hits), "valid_exact_match_samples": samples}
