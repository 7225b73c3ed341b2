"""Chat-template tokenisation: labels exactly on the assistant turns, and the over-long policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from transformers import PreTrainedTokenizerBase

from core.data import (
    IGNORE_INDEX,
    ChatExample,
    DataValidationError,
    ExampleEncoder,
    ExampleEncodingError,
    Message,
    PromptCompletionExample,
    tokenize_examples,
)

QUESTION = ChatExample(
    (Message("user", "What is two plus two?"), Message("assistant", "The answer is four."))
)
TWO_TURNS = ChatExample(
    (
        Message("system", "Be brief."),
        Message("user", "What is two plus two?"),
        Message("assistant", "four"),
        Message("user", "And the capital of France?"),
        Message("assistant", "Paris"),
    )
)


def labelled_runs(labels: list[int]) -> list[list[int]]:
    """The maximal runs of labels that are not ignored."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


def decoded_runs(tokenizer: PreTrainedTokenizerBase, labels: list[int]) -> list[str]:
    return [str(tokenizer.decode(run, skip_special_tokens=False)) for run in labelled_runs(labels)]


def test_chat_labels_cover_exactly_the_assistant_content_and_its_end_of_turn_token(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoder = ExampleEncoder(chatml_tokenizer)
    item = encoder.encode(QUESTION)
    assert item.input_ids == chatml_tokenizer.apply_chat_template(QUESTION.as_dicts(), return_dict=False)
    assert decoded_runs(chatml_tokenizer, item.labels) == ["The answer is four.<|im_end|>"]
    assert all(label in (IGNORE_INDEX, i) for label, i in zip(item.labels, item.input_ids, strict=True))
    assert encoder.span_methods == {"prefix": 1}


def test_chat_labels_leave_out_the_generation_prompt_and_the_default_system_turn(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    item = ExampleEncoder(chatml_tokenizer).encode(QUESTION)
    first = item.labels.index(next(label for label in item.labels if label != IGNORE_INDEX))
    unlabelled = str(chatml_tokenizer.decode(item.input_ids[:first], skip_special_tokens=False))
    assert unlabelled.startswith("<|im_start|>system\nYou are a tiny test model.<|im_end|>")
    assert unlabelled.endswith("What is two plus two?<|im_end|>\n<|im_start|>assistant\n")
    assert chatml_tokenizer.decode(item.input_ids[-1:]) == "\n" and item.labels[-1] == IGNORE_INDEX


def test_multi_turn_chat_labels_both_assistant_turns_and_nothing_between(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    item = ExampleEncoder(chatml_tokenizer).encode(TWO_TURNS)
    assert decoded_runs(chatml_tokenizer, item.labels) == ["four<|im_end|>", "Paris<|im_end|>"]


def test_non_prefix_consistent_template_falls_back_to_character_offsets(
    counting_tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoder = ExampleEncoder(counting_tokenizer)
    item = encoder.encode(TWO_TURNS)
    assert encoder.span_methods == {"offsets": 1}
    assert item.input_ids == counting_tokenizer.apply_chat_template(TWO_TURNS.as_dicts(), return_dict=False)
    assert decoded_runs(counting_tokenizer, item.labels) == ["four<|im_end|>", "Paris<|im_end|>"]


def test_conversation_opening_with_the_assistant_is_labelled_by_offsets(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    example = ChatExample((Message("assistant", "hello world"), Message("user", "hi")))
    encoder = ExampleEncoder(chatml_tokenizer)
    assert decoded_runs(chatml_tokenizer, encoder.encode(example).labels) == ["hello world<|im_end|>"]
    assert encoder.span_methods == {"offsets": 1}


def test_prompt_completion_with_a_chat_template_is_a_user_then_assistant_turn(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoder = ExampleEncoder(chatml_tokenizer)
    as_pc = encoder.encode(PromptCompletionExample("What is two plus two?", "The answer is four."))
    assert as_pc == encoder.encode(QUESTION)


def test_prompt_completion_without_a_chat_template_is_prompt_completion_eos(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoder = ExampleEncoder(plain_tokenizer)
    item = encoder.encode(PromptCompletionExample("Q: two plus two? A:", " four"))
    prompt_ids = plain_tokenizer("Q: two plus two? A:")["input_ids"]
    completion_ids = plain_tokenizer(" four", add_special_tokens=False)["input_ids"]
    assert item.input_ids == [*prompt_ids, *completion_ids, plain_tokenizer.eos_token_id]
    assert item.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert decoded_runs(plain_tokenizer, item.labels) == [" four<|endoftext|>"]
    assert encoder.span_methods == {"plain": 1}


def test_chat_example_without_a_chat_template_is_an_encoding_error(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    with pytest.raises(ExampleEncodingError, match="chat template"):
        ExampleEncoder(plain_tokenizer).encode(QUESTION)


def test_a_template_that_raises_is_reported_by_line(
    make_tokenizer: Callable[..., PreTrainedTokenizerBase],
) -> None:
    strict = make_tokenizer("{{ raise_exception('Conversation roles must alternate') }}")
    example = ChatExample(QUESTION.messages, line=7)
    with pytest.raises(DataValidationError) as caught:
        tokenize_examples([example], strict, max_seq_length=64)
    [problem] = caught.value.report.problems
    assert problem.line == 7 and "roles must alternate" in problem.message


def test_tokenize_examples_keeps_examples_up_to_max_seq_length(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    length = len(ExampleEncoder(chatml_tokenizer).encode(QUESTION).input_ids)
    dataset = tokenize_examples([QUESTION, TWO_TURNS], chatml_tokenizer, max_seq_length=1000)
    assert len(dataset) == 2 and dataset.num_dropped == 0
    assert len(tokenize_examples([QUESTION], chatml_tokenizer, max_seq_length=length)[0].input_ids) == length


def test_over_long_examples_are_rejected_by_line_under_the_error_policy(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    length = len(ExampleEncoder(chatml_tokenizer).encode(QUESTION).input_ids)
    examples = [ChatExample(TWO_TURNS.messages, line=1), ChatExample(QUESTION.messages, line=2)]
    examples.append(ChatExample(TWO_TURNS.messages, line=3))
    with pytest.raises(DataValidationError) as caught:
        tokenize_examples(examples, chatml_tokenizer, max_seq_length=length)
    assert [p.line for p in caught.value.report.problems] == [1, 3]
    assert "never truncated" in caught.value.report.problems[0].message


def test_drop_policy_skips_and_counts_over_long_examples_without_truncating(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    length = len(ExampleEncoder(chatml_tokenizer).encode(QUESTION).input_ids)
    examples = [ChatExample(TWO_TURNS.messages, line=1), ChatExample(QUESTION.messages, line=2)]
    dataset = tokenize_examples(examples, chatml_tokenizer, max_seq_length=length, truncation="drop")
    assert dataset.num_dropped == 1 and dataset.dropped_lines == [1]
    assert len(dataset) == 1 and len(dataset[0].input_ids) == length


def test_drop_policy_that_drops_everything_is_an_error(chatml_tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(DataValidationError, match="all 1 examples are longer than max_seq_length=5"):
        tokenize_examples([QUESTION], chatml_tokenizer, max_seq_length=5, truncation="drop")


def test_tokenize_examples_rejects_an_unknown_truncation_policy(
    chatml_tokenizer: PreTrainedTokenizerBase,
) -> None:
    with pytest.raises(ValueError, match="truncation"):
        tokenize_examples([QUESTION], chatml_tokenizer, max_seq_length=64, truncation="cut")  # type: ignore[arg-type]  # the wrong value is the test
