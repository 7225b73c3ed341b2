"""Tokenisation with the model's chat template, and the loss mask (labels) of each example.

Labels follow the Hugging Face causal-LM convention: aligned with ``input_ids`` (the model shifts them)
and ``-100`` where no loss is taken. Only the assistant turns are learned: their content and the
end-of-turn token the template writes after it, so the model learns to stop. The generation prompt
(``<|im_start|>assistant\\n``), system and user turns, and template glue after the end-of-turn token
(ChatML's trailing ``\\n``) get ``-100``.

Finding the assistant spans. The primary method is token-level prefix consistency: for the i-th
message, an assistant turn, render ``messages[:i]`` with ``add_generation_prompt=True`` (the span
starts where it ends) and ``messages[:i+1]`` (the span ends where it ends), and require both token
sequences to be prefixes of the full conversation's. Templates that rewrite earlier turns (a system
prompt folded into the last user turn, reasoning stripped from past turns) or a conversation that
opens with the assistant fail that check; for those the spans are found by character offsets instead:
each message's content is located in order in the rendered text and mapped to tokens through the fast
tokenizer's ``offset_mapping``. :attr:`ExampleEncoder.span_methods` counts which method served.

Without a chat template, prompt/completion examples are plain ``prompt + completion + eos`` with
labels on ``completion + eos``; chat examples need a template.

Over-long examples are never truncated (a cut answer teaches the model to stop mid-sentence):
:func:`tokenize_examples` rejects them (``truncation="error"``) or skips and counts them (``"drop"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

from jinja2 import TemplateError

from core.data.examples import Example, PromptCompletionExample
from core.data.report import DataValidationError, ValidationReport

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
Truncation: TypeAlias = Literal["error", "drop"]
SpanMethod: TypeAlias = Literal["prefix", "offsets", "plain"]


class ExampleEncodingError(ValueError):
    """The tokenizer's chat template failed on an example, or its output cannot be aligned with it."""


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]


@dataclass
class TokenizedDataset:
    """Map-style dataset of tokenised examples, with what the ``drop`` policy skipped."""

    items: list[TokenizedExample]
    max_seq_length: int
    dropped_lines: list[int] = field(default_factory=list)

    @property
    def num_dropped(self) -> int:
        return len(self.dropped_lines)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TokenizedExample:
        return self.items[index]


def overlong_message(length: int, max_seq_length: int) -> str:
    """The one wording of the over-long policy, used by the validator and the builder."""
    return (
        f"example is {length} tokens, longer than max_seq_length={max_seq_length}; over-long examples "
        "are rejected, never truncated: shorten it, split it, or raise max_seq_length"
    )


class ExampleEncoder:
    """Turns examples into token ids and labels with one tokenizer; caches what the tokenizer implies."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        added = tokenizer.added_tokens_decoder
        self.special_ids = set(tokenizer.all_special_ids) | {i for i, t in added.items() if t.special}
        # Longest first, so that a special token that extends another one is matched whole.
        self.special_texts = sorted(
            {str(t) for t in tokenizer.all_special_tokens} | {t.content for t in added.values() if t.special},
            key=len,
            reverse=True,
        )
        self.span_methods: Counter[SpanMethod] = Counter()

    def encode(self, example: Example) -> TokenizedExample:
        """Token ids and labels of one example; raises :class:`ExampleEncodingError`."""
        if isinstance(example, PromptCompletionExample) and not self.has_chat_template:
            self.span_methods["plain"] += 1
            prompt_ids = self._plain_prompt_ids(example.prompt)
            answer_ids = [*self._text_ids(example.completion), self._eos_id()]
            return TokenizedExample(prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids)
        chat = example.as_chat() if isinstance(example, PromptCompletionExample) else example
        self._require_template()
        messages = chat.as_dicts()
        ids = self._chat_ids(messages)
        spans = self._spans_by_prefix(messages, ids)
        if spans is not None:
            self.span_methods["prefix"] += 1
        else:
            self.span_methods["offsets"] += 1
            ids, spans = self._spans_by_offsets(messages)
        labels = [IGNORE_INDEX] * len(ids)
        for start, end in spans:
            labels[start:end] = ids[start:end]
        return TokenizedExample(ids, labels)

    def encode_prompt(self, example: Example) -> list[int]:
        """Ids of everything before the final assistant turn, generation prompt included."""
        if isinstance(example, PromptCompletionExample):
            if not self.has_chat_template:
                return self._plain_prompt_ids(example.prompt)
            example = example.as_chat()
        if example.messages[-1].role != "assistant" or len(example.messages) < 2:
            raise ExampleEncodingError(
                "a chat example needs a final assistant turn after a prompt to evaluate"
            )
        self._require_template()
        return self._chat_ids(example.as_dicts()[:-1], add_generation_prompt=True)

    def _spans_by_prefix(
        self, messages: list[dict[str, str]], ids: list[int]
    ) -> list[tuple[int, int]] | None:
        """Token spans of the assistant turns, or None when the template is not prefix-consistent here."""
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            if i == 0:
                return None
            before = self._chat_ids(messages[:i], add_generation_prompt=True)
            after = self._chat_ids(messages[: i + 1])
            if len(after) <= len(before) or ids[: len(before)] != before or ids[: len(after)] != after:
                return None
            spans.append((len(before), self._end_of_turn(ids, len(before), len(after))))
        return spans

    def _end_of_turn(self, ids: list[int], start: int, end: int) -> int:
        """Cut the span after its last special token when only whitespace follows it (ChatML's ``\\n``)."""
        for j in range(end - 1, start, -1):
            if ids[j] in self.special_ids:
                tail = cast(str, self.tokenizer.decode(ids[j + 1 : end], skip_special_tokens=False))
                return j + 1 if not tail.strip() else end
        return end

    def _spans_by_offsets(self, messages: list[dict[str, str]]) -> tuple[list[int], list[tuple[int, int]]]:
        if not self.tokenizer.is_fast:
            raise ExampleEncodingError(
                "the chat template is not prefix-consistent for this example and the tokenizer is not a "
                "fast tokenizer, so the assistant turns cannot be located by character offsets"
            )
        text = self._render(messages)
        char_spans = []
        cursor = 0
        for i, message in enumerate(messages):
            content = message["content"]
            start = text.find(content, cursor)
            if start < 0:
                # Templates commonly trim message content.
                content = content.strip()
                start = text.find(content, cursor)
            if start < 0:
                raise ExampleEncodingError(
                    f"cannot find the content of messages[{i}] in the rendered chat template output"
                )
            cursor = start + len(content)
            if message["role"] == "assistant":
                cursor = self._after_end_of_turn_text(text, cursor)
                char_spans.append((start, cursor))
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoding["input_ids"])
        offsets: list[tuple[int, int]] = encoding["offset_mapping"]
        spans = []
        for char_start, char_end in char_spans:
            hit = [k for k, (s, e) in enumerate(offsets) if e > s and e > char_start and s < char_end]
            if not hit:
                raise ExampleEncodingError("an assistant turn maps to no tokens of the rendered chat")
            spans.append((hit[0], hit[-1] + 1))
        return ids, spans

    def _after_end_of_turn_text(self, text: str, pos: int) -> int:
        """Extend a character span over whitespace and one special token right after the content, if any."""
        j = pos
        while j < len(text) and text[j].isspace():
            j += 1
        for special in self.special_texts:
            if special and text.startswith(special, j):
                return j + len(special)
        return pos

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        try:
            out = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except TemplateError as err:
            raise ExampleEncodingError(f"the chat template failed: {err}") from err
        return cast(str, out)

    def _chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
        try:
            out = self.tokenizer.apply_chat_template(
                messages, tokenize=True, return_dict=False, add_generation_prompt=add_generation_prompt
            )
        except TemplateError as err:
            raise ExampleEncodingError(f"the chat template failed: {err}") from err
        return list(cast(list[int], out))

    def _plain_prompt_ids(self, prompt: str) -> list[int]:
        # The tokenizer's own special tokens (a BOS for Llama-style tokenizers) go before the prompt,
        # and the completion is encoded on its own, as it is when the model generates it.
        return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _eos_id(self) -> int:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ExampleEncodingError("the tokenizer has neither a chat template nor an eos token")
        return int(eos)

    def _require_template(self) -> None:
        if not self.has_chat_template:
            raise ExampleEncodingError(
                "chat examples need a tokenizer with a chat template, and this one has no chat template"
            )


def tokenize_examples(
    examples: Iterable[Example],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    truncation: Truncation = "error",
) -> TokenizedDataset:
    """Tokenise validated examples for training.

    Args:
        examples: from :func:`core.data.load_examples`.
        tokenizer: the base model's tokenizer; its chat template is used when it has one.
        max_seq_length: the longest example, in tokens, that is kept.
        truncation: what to do with longer examples: ``"error"`` raises :class:`DataValidationError`
            listing every one of them by line; ``"drop"`` skips them and records their lines in
            ``dropped_lines``. Neither ever truncates an example.
    """
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
    if truncation not in ("error", "drop"):
        raise ValueError(f"truncation must be 'error' or 'drop', got {truncation!r}")
    encoder = ExampleEncoder(tokenizer)
    report = ValidationReport()
    dataset = TokenizedDataset(items=[], max_seq_length=max_seq_length)
    for example in examples:
        try:
            item = encoder.encode(example)
        except ExampleEncodingError as err:
            report.add(example.line, None, str(err))
            continue
        if len(item.input_ids) <= max_seq_length:
            dataset.items.append(item)
        elif truncation == "drop":
            dataset.dropped_lines.append(example.line)
        else:
            report.add(example.line, None, overlong_message(len(item.input_ids), max_seq_length))
    report.num_examples = len(dataset.items)
    if report.ok and not dataset.items:
        report.add(0, None, _no_examples_left(dataset.dropped_lines, max_seq_length))
    if not report.ok:
        raise DataValidationError(report)
    return dataset


def _no_examples_left(dropped_lines: Sequence[int], max_seq_length: int) -> str:
    if dropped_lines:
        return f"all {len(dropped_lines)} examples are longer than max_seq_length={max_seq_length}"
    return "no examples to tokenise"
