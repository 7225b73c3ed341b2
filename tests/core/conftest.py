"""Tiny seeded models for the core tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB = 64


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float64) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32, randomly initialised from `seed`."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.eval()  # tests switch to train() where they mean it
    return model


@pytest.fixture
def make_llama() -> Callable[..., LlamaForCausalLM]:
    return tiny_llama


def batch(seed: int = 1, size: int = 3, length: int = 7, pad_last: int = 0) -> dict[str, torch.Tensor]:
    """Random input ids with labels; the last row right-padded by `pad_last` tokens."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (size, length), generator=gen)
    mask = torch.ones_like(ids)
    if pad_last:
        ids[-1, -pad_last:] = 0
        mask[-1, -pad_last:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def randomise_lora_B(model: torch.nn.Module, seed: int = 2, std: float = 0.1) -> None:
    """B starts at zero; tests that need a non-trivial adapter give it random values."""
    from core import moe_lora_layers

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in moe_lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=gen, dtype=torch.float64) * std)
