"""Tiny, seeded, in-process models and tokenizers for tests: no downloads.

`build_tokenizer` trains a byte-level BPE with SmolLM2's ChatML template; `save_tiny_model`
writes a 2-layer Llama and that tokenizer as a Hugging Face directory, which
`core.models.resolve_model` (and so the trainer, the CLI and the service) loads like any
local model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
DEFAULT_SYSTEM = "You are a tiny test model."

# SmolLM2-Instruct's template, with a shorter default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Writes the number of messages up front, so a prefix of the conversation renders differently from
# the start of the whole one: not prefix-consistent, which forces the character-offset fallback.
COUNTING_TEMPLATE = (
    "{{ '<|im_start|>system\\nturns=' + (messages | length | string) + '<|im_end|>\\n' }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CORPUS = [
    "What is two plus two? The answer is four.",
    "hello world, the quick brown fox jumps over the lazy dog",
    "system user assistant Paris is the capital of France.",
    "positive negative great terrible movie film answer A B C D E",
]


def build_tokenizer(chat_template: str | None, eos_token: str = "<|im_end|>") -> PreTrainedTokenizerFast:
    """Byte-level BPE: any text encodes, and decoding gives the text back exactly."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=eos_token,
        bos_token="<|im_start|>",
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
    )


def save_tiny_model(directory: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A randomly initialised Llama with the ChatML tokenizer, saved as a HF model directory."""
    tokenizer = build_tokenizer(CHATML_TEMPLATE)
    tokenizer.pad_token = "<|endoftext|>"
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # std 0.02 on hidden 32 bounds every logit near 0.6 and no adapter could fit anything.
        initializer_range=0.2,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
