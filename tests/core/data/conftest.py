"""Tiny byte-level BPE tokenizers with a ChatML template (SmolLM2's), built in-process: no downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from tests.support import CHATML_TEMPLATE, COUNTING_TEMPLATE, build_tokenizer


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
