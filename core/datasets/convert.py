"""Record converters: public benchmark schemas to the trainer's prompt/completion records.

Each converter is a callable taking one decoded JSON record and returning
``{"prompt": str, "completion": str}``; it raises :class:`RecordError` naming the field when
the record does not have its schema. Extra keys in a record are ignored.

- :class:`MultipleChoice`: ``{"question", "choices", "answer_index"}`` (CommonsenseQA, ARC,
  OpenBookQA, ...) -> the question, one lettered line per choice, and the instruction; the
  completion is the answer's letter (A, B, C, ... by position).
- :class:`Classification`: ``{"text", "label"}`` (SST-2, CoLA) -> the completion is the label's word.
- :class:`SentencePair`: ``{"text_a", "text_b", "label"}`` (MRPC, QQP, RTE) -> likewise.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

LETTERS = string.ascii_uppercase


class RecordError(ValueError):
    """A record without the expected schema; `field` names the offending key, `line` its 1-based line."""

    def __init__(self, field: str, message: str, line: int = 0) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{field}: {message}")
        self.field, self.message, self.line = field, message, line


class Converter(Protocol):
    """Anything that turns one source record into a prompt/completion record."""

    def __call__(self, record: Mapping[str, Any]) -> dict[str, str]: ...


@dataclass(frozen=True)
class MultipleChoice:
    """``"<question>\\nA. ...\\nB. ...\\n<instruction>"`` -> ``"<letter>"``."""

    instruction: str = "Answer with the letter only."

    def __call__(self, record: Mapping[str, Any]) -> dict[str, str]:
        question = _text(record, "question")
        choices = record.get("choices")
        if not isinstance(choices, list) or not choices:
            raise RecordError("choices", f"expected a non-empty list of strings, got {choices!r}")
        if len(choices) > len(LETTERS):
            raise RecordError(
                "choices", f"at most {len(LETTERS)} choices can be lettered, got {len(choices)}"
            )
        for i, choice in enumerate(choices):
            if not isinstance(choice, str) or not choice.strip():
                raise RecordError(f"choices[{i}]", f"expected a non-empty string, got {choice!r}")
        answer = _index(record, "answer_index", len(choices))
        lines = [
            question,
            *(f"{LETTERS[i]}. {choice.strip()}" for i, choice in enumerate(choices)),
            self.instruction,
        ]
        return {"prompt": "\n".join(lines), "completion": LETTERS[answer]}


@dataclass(frozen=True)
class Classification:
    """``{"text", "label"}`` -> the template filled with ``{text}`` and ``{options}``; completion ``label_words[label]``.

    ``{options}`` renders the label words as "negative or positive" (or "a, b or c").
    """

    label_words: tuple[str, ...] = ("negative", "positive")
    template: str = "{text}\nAnswer with one word: {options}."

    def __post_init__(self) -> None:
        _check_template(self.template, {"text", "options"}, required={"text"})
        _check_words(self.label_words)

    def __call__(self, record: Mapping[str, Any]) -> dict[str, str]:
        text = _text(record, "text")
        label = _index(record, "label", len(self.label_words))
        prompt = self.template.format(text=text, options=_options(self.label_words))
        return {"prompt": prompt, "completion": self.label_words[label]}


@dataclass(frozen=True)
class SentencePair:
    """``{"text_a", "text_b", "label"}`` -> the template filled with ``{text_a}``, ``{text_b}``, ``{options}``."""

    label_words: tuple[str, ...] = ("no", "yes")
    template: str = (
        "Sentence 1: {text_a}\nSentence 2: {text_b}\n"
        "Do the two sentences mean the same thing? Answer with one word: {options}."
    )

    def __post_init__(self) -> None:
        _check_template(self.template, {"text_a", "text_b", "options"}, required={"text_a", "text_b"})
        _check_words(self.label_words)

    def __call__(self, record: Mapping[str, Any]) -> dict[str, str]:
        text_a, text_b = _text(record, "text_a"), _text(record, "text_b")
        label = _index(record, "label", len(self.label_words))
        prompt = self.template.format(text_a=text_a, text_b=text_b, options=_options(self.label_words))
        return {"prompt": prompt, "completion": self.label_words[label]}


def _text(record: Mapping[str, Any], key: str) -> str:
    if not isinstance(record, Mapping):
        raise RecordError("record", f"expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise RecordError(key, "missing field")
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(key, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _index(record: Mapping[str, Any], key: str, size: int) -> int:
    if key not in record:
        raise RecordError(key, "missing field")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(key, f"expected an integer, got {value!r}")
    if not 0 <= value < size:
        raise RecordError(key, f"must be in [0, {size - 1}], got {value}")
    return value


def _options(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _check_template(template: str, allowed: set[str], required: set[str]) -> None:
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if names - allowed:
        raise ValueError(f"template: unknown placeholder(s) {sorted(names - allowed)}; use {sorted(allowed)}")
    if required - names:
        raise ValueError(f"template: missing placeholder(s) {sorted(required - names)}")


def _check_words(words: tuple[str, ...]) -> None:
    if len(words) < 2:
        raise ValueError(f"label_words: need at least two words, got {list(words)}")
    if any(not w.strip() or w != w.strip() for w in words):
        raise ValueError(
            f"label_words: words must be non-empty without surrounding spaces, got {list(words)}"
        )
    if len(set(words)) != len(words):
        raise ValueError(f"label_words: words must be distinct, got {list(words)}")
