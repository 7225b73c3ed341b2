"""Right padding to the longest example of the batch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from core.data import IGNORE_INDEX, PaddingCollator, TokenizedExample


def test_collator_right_pads_to_the_longest_example_with_masked_labels() -> None:
    items = [TokenizedExample([5, 6, 7], [-100, 6, 7]), TokenizedExample([8], [8])]
    batch = PaddingCollator(pad_token_id=0)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collator_pads_with_eos_when_the_tokenizer_has_no_pad_token(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    assert chatml_tokenizer.pad_token_id is None
    assert PaddingCollator.from_tokenizer(chatml_tokenizer).pad_token_id == chatml_tokenizer.eos_token_id


def test_collator_prefers_the_pad_token(make_tokenizer: Callable[..., PreTrainedTokenizerBase]) -> None:
    tokenizer = make_tokenizer(None)
    tokenizer.pad_token = "<|endoftext|>"
    assert PaddingCollator.from_tokenizer(tokenizer).pad_token_id == tokenizer.convert_tokens_to_ids(
        "<|endoftext|>"
    )


def test_collator_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="empty"):
        PaddingCollator(0)([])
