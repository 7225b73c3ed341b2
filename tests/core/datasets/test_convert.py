"""Record converters: multiple choice to letters, classification and sentence pairs to label words."""

from __future__ import annotations

import pytest

from core.datasets import Classification, MultipleChoice, RecordError, SentencePair


def test_multiple_choice_letters_choices_by_position_and_answers_with_the_letter() -> None:
    record = {
        "question": "Where do fish live?",
        "choices": ["desert", "sea", "sky"],
        "answer_index": 1,
        "id": "x",
    }
    assert MultipleChoice()(record) == {
        "prompt": "Where do fish live?\nA. desert\nB. sea\nC. sky\nAnswer with the letter only.",
        "completion": "B",
    }


def test_multiple_choice_custom_instruction_and_last_of_five() -> None:
    record = {"question": "q?", "choices": list("vwxyz"), "answer_index": 4}
    out = MultipleChoice(instruction="Letter:")(record)
    assert out["prompt"].endswith("E. z\nLetter:") and out["completion"] == "E"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"choices": ["a", "b"], "answer_index": 0}, "question"),
        ({"question": " ", "choices": ["a", "b"], "answer_index": 0}, "question"),
        ({"question": "q", "choices": [], "answer_index": 0}, "choices"),
        ({"question": "q", "choices": "ab", "answer_index": 0}, "choices"),
        ({"question": "q", "choices": ["a", 3], "answer_index": 0}, "choices[1]"),
        ({"question": "q", "choices": ["a", "b"], "answer_index": 2}, "answer_index"),
        ({"question": "q", "choices": ["a", "b"], "answer_index": True}, "answer_index"),
        ({"question": "q", "choices": ["a", "b"]}, "answer_index"),
        ({"question": "q", "choices": [str(i) for i in range(27)], "answer_index": 0}, "choices"),
    ],
)
def test_multiple_choice_rejects_records_without_the_schema_naming_the_field(
    record: dict, field: str
) -> None:
    with pytest.raises(RecordError) as err:
        MultipleChoice()(record)
    assert err.value.field == field


def test_classification_uses_the_label_word_and_lists_the_options() -> None:
    convert = Classification(("negative", "positive"))
    assert convert({"text": "a gorgeous film", "label": 1}) == {
        "prompt": "a gorgeous film\nAnswer with one word: negative or positive.",
        "completion": "positive",
    }
    assert convert({"text": "dull", "label": 0})["completion"] == "negative"


def test_classification_label_words_and_template_are_configurable() -> None:
    convert = Classification(("bad", "ok", "good"), template="Review: {text}\nOne of {options}?")
    out = convert({"text": "fine", "label": 2})
    assert out == {"prompt": "Review: fine\nOne of bad, ok or good?", "completion": "good"}


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"label": 0}, "text"),
        ({"text": "t", "label": 2}, "label"),
        ({"text": "t", "label": "1"}, "label"),
        ({"text": "t"}, "label"),
    ],
)
def test_classification_rejects_bad_records(record: dict, field: str) -> None:
    with pytest.raises(RecordError) as err:
        Classification()(record)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_words": ("only",)}, "at least two"),
        ({"label_words": ("yes", "yes")}, "distinct"),
        ({"label_words": ("yes ", "no")}, "surrounding spaces"),
        ({"template": "no text here {options}"}, "missing placeholder"),
        ({"template": "{text} {label}"}, "unknown placeholder"),
    ],
)
def test_classification_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Classification(**kwargs)


def test_sentence_pair_fills_both_texts_and_answers_with_the_label_word() -> None:
    out = SentencePair()({"text_a": "He left.", "text_b": "He went away.", "label": 1, "id_a": "1"})
    assert out["prompt"] == (
        "Sentence 1: He left.\nSentence 2: He went away.\n"
        "Do the two sentences mean the same thing? Answer with one word: no or yes."
    )
    assert out["completion"] == "yes"
    with pytest.raises(RecordError) as err:
        SentencePair()({"text_a": "a", "label": 0})
    assert err.value.field == "text_b"
