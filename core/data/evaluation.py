"""Exact-match evaluation: generation prompts with their reference answers, and the match rule.

The trainer greedily generates from ``EvalExample.prompt_ids``, decodes the new tokens with
``skip_special_tokens=True`` up to the first end-of-turn/eos token, and scores the text with
:func:`exact_match`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.data.examples import ChatExample, Example, PromptCompletionExample
from core.data.tokenize import ExampleEncoder

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EvalExample:
    """The ids to generate from (up to and including the generation prompt) and the expected answer."""

    prompt_ids: list[int]
    reference: str
    line: int = 0


def eval_example(example: Example, encoder: ExampleEncoder) -> EvalExample:
    """The generation prompt and reference of a prompt/completion example or a chat ending in an assistant turn.

    Raises ``ExampleEncodingError`` for a chat example that does not end with an assistant turn.
    """
    prompt_ids = encoder.encode_prompt(example)
    if isinstance(example, PromptCompletionExample):
        return EvalExample(prompt_ids, example.completion, example.line)
    return EvalExample(prompt_ids, example.messages[-1].content, example.line)


def eval_examples(examples: Iterable[Example], tokenizer: PreTrainedTokenizerBase) -> list[EvalExample]:
    """:func:`eval_example` for each example that can be evaluated; chats not ending in an answer are skipped."""
    encoder = ExampleEncoder(tokenizer)
    return [
        eval_example(ex, encoder)
        for ex in examples
        if not isinstance(ex, ChatExample) or (len(ex.messages) > 1 and ex.messages[-1].role == "assistant")
    ]


def exact_match(prediction: str, reference: str) -> bool:
    """True when the strings are equal after stripping leading and trailing whitespace.

    Case-sensitive and otherwise verbatim (no punctuation or article normalisation), so that "Paris"
    and "paris." are different answers, as in the paper's exact-match metric.
    """
    return prediction.strip() == reference.strip()
