"""Tiny byte-level BPE tokenizers with a ChatML template (SmolLM2's), built in-process: no downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

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


@pytest.fixture(scope="session")
def make_tokenizer() -> Callable[..., PreTrainedTokenizerFast]:
    """For tests that need a tokenizer with their own chat template."""
    return build_tokenizer


@pytest.fixture(scope="session")
def chatml_tokenizer() -> PreTrainedTokenizerBase:
    return build_tokenizer(CHATML_TEMPLATE)


@pytest.fixture(scope="session")
def counting_tokenizer() -> PreTrainedTokenizerBase:
    return build_tokenizer(COUNTING_TEMPLATE)


@pytest.fixture(scope="session")
def plain_tokenizer() -> PreTrainedTokenizerBase:
    """No chat template; eos is ``<|endoftext|>`` as in base (non-instruct) models."""
    return build_tokenizer(None, eos_token="<|endoftext|>")


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[list[object]], Path]:
    """Write records (JSON-encoded) or raw ``str``/``bytes`` lines to a file, one per line."""

    def write(lines: list[object]) -> Path:
        path = tmp_path / "data.jsonl"
        chunks = []
        for line in lines:
            if isinstance(line, bytes):
                chunks.append(line)
            elif isinstance(line, str):
                chunks.append(line.encode())
            else:
                chunks.append(json.dumps(line).encode())
        path.write_bytes(b"\n".join(chunks) + b"\n")
        return path

    return write
