"""Right-padding collator for causal-LM fine-tuning batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from core.data.tokenize import IGNORE_INDEX, TokenizedExample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class PaddingCollator:
    """Pads a batch to its longest example: ``input_ids``, ``attention_mask``, ``labels`` as LongTensors.

    Padding is on the right, with ``attention_mask`` 0 and labels ``-100`` there, so the pad id
    never matters to the loss; it is the tokenizer's pad token, or eos when it has none.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> PaddingCollator:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
        return cls(int(pad))

    def __call__(self, items: Sequence[TokenizedExample]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        width = max(len(item.input_ids) for item in items)
        # (batch, width) each
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.input_ids)
            input_ids[row, :n] = torch.tensor(item.input_ids, dtype=torch.long)
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(item.labels, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
