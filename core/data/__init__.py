"""Training data: JSONL validation, chat-template tokenisation with assistant-only labels, order, batches.

Pipeline: ``validate`` (API uploads) or ``load_examples`` -> ``tokenize_examples`` ->
``ResumableBatchSampler`` + ``PaddingCollator``; ``eval_examples`` + ``exact_match`` for evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.data.evaluation import EvalExample, eval_example, eval_examples, exact_match
from core.data.examples import ChatExample, DataFormat, Example, Message, PromptCompletionExample
from core.data.report import DataValidationError, Problem, ValidationReport
from core.data.tokenize import (
    IGNORE_INDEX,
    ExampleEncoder,
    ExampleEncodingError,
    TokenizedDataset,
    TokenizedExample,
    Truncation,
    tokenize_examples,
)
from core.data.validate import Source, load_examples, validate

if TYPE_CHECKING:
    from core.data.collate import PaddingCollator
    from core.data.sampling import ResumableBatchSampler, epoch_order

# The API imports this package to validate uploads and must not pay for importing torch,
# so the torch-backed names load on first use.
_LAZY = {
    "PaddingCollator": "core.data.collate",
    "ResumableBatchSampler": "core.data.sampling",
    "epoch_order": "core.data.sampling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IGNORE_INDEX",
    "ChatExample",
    "DataFormat",
    "DataValidationError",
    "EvalExample",
    "Example",
    "ExampleEncoder",
    "ExampleEncodingError",
    "Message",
    "PaddingCollator",
    "Problem",
    "PromptCompletionExample",
    "ResumableBatchSampler",
    "Source",
    "TokenizedDataset",
    "TokenizedExample",
    "Truncation",
    "ValidationReport",
    "epoch_order",
    "eval_example",
    "eval_examples",
    "exact_match",
    "load_examples",
    "tokenize_examples",
    "validate",
]
