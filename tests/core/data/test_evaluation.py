"""Generation prompts, references and the exact-match rule."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerBase

from core.data import (
    ChatExample,
    ExampleEncoder,
    ExampleEncodingError,
    Message,
    PromptCompletionExample,
    eval_example,
    eval_examples,
    exact_match,
)

CHAT = ChatExample((Message("user", "Capital of France?"), Message("assistant", "Paris")), line=3)


def test_chat_eval_prompt_ends_with_the_generation_prompt(chatml_tokenizer: PreTrainedTokenizerBase) -> None:
    ev = eval_example(CHAT, ExampleEncoder(chatml_tokenizer))
    text = str(chatml_tokenizer.decode(ev.prompt_ids, skip_special_tokens=False))
    assert text.endswith("<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert (ev.reference, ev.line) == ("Paris", 3)


def test_eval_prompt_is_the_unlabelled_start_of_the_training_sequence(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoder = ExampleEncoder(chatml_tokenizer)
    item = encoder.encode(CHAT)
    prompt_ids = eval_example(CHAT, encoder).prompt_ids
    assert item.input_ids[: len(prompt_ids)] == prompt_ids
    assert item.labels[len(prompt_ids) - 1] == -100 and item.labels[len(prompt_ids)] != -100


def test_prompt_completion_eval_prompt_without_a_template_is_the_plain_prompt(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    ev = eval_example(PromptCompletionExample("Q: 2+2? A:", " 4"), ExampleEncoder(plain_tokenizer))
    assert ev.prompt_ids == plain_tokenizer("Q: 2+2? A:")["input_ids"] and ev.reference == " 4"


def test_chat_not_ending_with_an_assistant_turn_cannot_be_evaluated(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    open_chat = ChatExample((*CHAT.messages, Message("user", "Thanks")))
    with pytest.raises(ExampleEncodingError, match="final assistant turn"):
        eval_example(open_chat, ExampleEncoder(chatml_tokenizer))
    assert eval_examples([open_chat, CHAT], chatml_tokenizer) == [
        eval_example(CHAT, ExampleEncoder(chatml_tokenizer))
    ]


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("Paris", "Paris", True),
        ("  Paris\n", "Paris ", True),
        ("paris", "Paris", False),
        ("Paris.", "Paris", False),
    ],
)
def test_exact_match_strips_whitespace_and_is_case_sensitive(
    prediction: str, reference: str, expected: bool
) -> None:
    assert exact_match(prediction, reference) is expected
