"""Incremental detokenization across split characters, and stop strings while streaming."""

from __future__ import annotations

import pytest

from core.inference.text import IncrementalDecoder, StopMatcher
from tests.support import CHATML_TEMPLATE, build_tokenizer

TEXT = "héllo wörld, 世界 🙂 the quick brown fox"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(CHATML_TEMPLATE)


def test_deltas_concatenate_to_the_full_decode_and_never_split_a_character(tokenizer) -> None:
    ids = tokenizer(TEXT, add_special_tokens=False).input_ids
    assert len(ids) > len(TEXT.encode()) // 2  # byte-level: the non-ASCII characters span several tokens
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(t) for t in ids]
    deltas.append(decoder.flush())
    assert "".join(deltas) == TEXT == tokenizer.decode(ids)
    assert not any("\ufffd" in d for d in deltas)
    assert "" in deltas  # some tokens completed no character and were held back


def test_special_tokens_are_not_text(tokenizer) -> None:
    ids = tokenizer("hello<|im_end|>", add_special_tokens=False).input_ids
    decoder = IncrementalDecoder(tokenizer)
    assert "".join([decoder.push(t) for t in ids] + [decoder.flush()]) == "hello"


def test_stop_string_cuts_the_text_and_no_part_of_it_is_released() -> None:
    matcher = StopMatcher(["STOP", "\n\n"])
    released = []
    for delta in ["Hello S", "T", "O", "P and more"]:
        out, stopped = matcher.push(delta)
        released.append(out)
        if stopped:
            break
    assert stopped and "".join(released) == "Hello " == matcher.text
    assert released[:3] == ["Hello ", "", ""]  # "S", "ST", "STO" could still become "STOP"


def test_a_held_back_prefix_is_released_once_it_cannot_be_a_stop() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.push("go ST") == ("go ", False)
    assert matcher.push("ay") == ("STay", False)
    assert matcher.push(" ST") == (" ", False)
    assert matcher.flush() == "ST" and matcher.text == "go STay ST"


def test_the_earliest_of_several_stop_strings_wins() -> None:
    matcher = StopMatcher(["world", "lo w"])
    out, stopped = matcher.push("hello world")
    assert stopped and out == "hel" == matcher.text
