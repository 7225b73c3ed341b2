"""The validator: every problem kind, by line, on paths, bytes and streams."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase

from core.data import (
    ChatExample,
    DataValidationError,
    Message,
    Problem,
    PromptCompletionExample,
    load_examples,
    validate,
)

WriteJsonl = Callable[[list[object]], Path]

CHAT = {
    "messages": [
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "four"},
    ]
}
PC = {"prompt": "What is two plus two?", "completion": "four"}


def problem_at(problems: list[Problem], line: int) -> Problem:
    [problem] = [p for p in problems if p.line == line]
    return problem


def test_validator_accepts_a_clean_chat_file_and_reports_its_format(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([CHAT, CHAT, CHAT]))
    assert report.ok
    assert (report.num_examples, report.format, report.problems) == (3, "chat", [])


def test_validator_accepts_a_clean_prompt_completion_file(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([PC, PC]))
    assert report.ok and report.format == "prompt_completion" and report.num_examples == 2


def test_validator_reports_invalid_json_with_line_number(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([CHAT, '{"messages": [', CHAT]))
    assert not report.ok
    problem = problem_at(report.problems, 2)
    assert problem.field is None and problem.message.startswith("invalid JSON")
    assert report.num_examples == 2


def test_validator_reports_a_line_that_is_not_an_object(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([CHAT, "[1, 2]", '"text"']))
    assert "expected a JSON object, got an array" in problem_at(report.problems, 2).message
    assert "got a string" in problem_at(report.problems, 3).message


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        ({"messages": "hi"}, "messages", "expected a list of messages"),
        ({"messages": []}, "messages", "empty list"),
        ({"messages": ["hi"]}, "messages[0]", "expected an object"),
        (
            {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]},
            "messages[0].role",
            "missing",
        ),
        ({"messages": [{"role": 3, "content": "hi"}]}, "messages[0].role", "expected a string, got a number"),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},
            "messages[0].content",
            "missing",
        ),
        (
            {"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "x"}]},
            "messages[0].content",
            "expected a string, got an array",
        ),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role", "unknown role 'bot'"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "no assistant turn"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]},
            "messages[1].content",
            "empty content",
        ),
        ({"prompt": "hi"}, "completion", "missing field"),
        ({"prompt": "hi", "completion": 4}, "completion", "expected a string, got a number"),
        ({"prompt": "", "completion": "x"}, "prompt", "empty content"),
    ],
)
def test_validator_reports_schema_problems_with_field_and_line(
    write_jsonl: WriteJsonl, record: object, field: str, fragment: str
) -> None:
    report = validate(write_jsonl([CHAT if "messages" in str(record) else PC, record]))
    problem = problem_at(report.problems, 2)
    assert problem.field == field
    assert fragment in problem.message


def test_validator_reports_every_problem_in_a_record_and_in_the_file(write_jsonl: WriteJsonl) -> None:
    bad_chat = {"messages": [{"role": "bot", "content": ""}, {"role": "user"}]}
    report = validate(write_jsonl([bad_chat, CHAT, "not json", {"prompt": "x"}]))
    assert [(p.line, p.field) for p in report.problems] == [
        (1, "messages[0].role"),
        (1, "messages[0].content"),
        (1, "messages[1].content"),
        (3, None),
        (4, "completion"),
    ]
    assert report.num_problems == 5 and report.num_examples == 1


def test_validator_reports_mixed_formats_on_each_line_of_the_other_format(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([CHAT, PC, CHAT, PC]))
    assert report.format == "chat"
    assert [p.line for p in report.problems] == [2, 4]
    assert "mixed formats" in report.problems[0].message
    assert report.num_examples == 2


def test_validator_reports_a_record_with_both_formats(write_jsonl: WriteJsonl) -> None:
    report = validate(write_jsonl([{**CHAT, **PC}]))
    assert "both 'messages'" in problem_at(report.problems, 1).message


def test_validator_reports_an_empty_file_on_line_zero(write_jsonl: WriteJsonl) -> None:
    for source in (b"", b"\n\n", b"  \n"):
        report = validate(source)
        assert [(p.line, p.message) for p in report.problems] == [(0, "empty file: no examples")]


def test_validator_skips_trailing_blank_lines_but_reports_blank_lines_between_examples() -> None:
    data = b'{"prompt": "a", "completion": "b"}\n\n \n{"prompt": "a", "completion": "b"}\n\n\n'
    report = validate(data)
    assert [p.line for p in report.problems] == [2, 3]
    assert all("blank line" in p.message for p in report.problems)
    assert report.num_examples == 2


def test_validator_reports_non_utf8_bytes_with_line_number() -> None:
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n'
    report = validate(data)
    problem = problem_at(report.problems, 2)
    assert "not valid UTF-8: byte 0xe9" in problem.message


def test_validator_accepts_a_utf8_byte_order_mark_and_crlf_line_ends() -> None:
    data = b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}\r\n{"prompt": "\xc3\xa9", "completion": "b"}\r\n'
    assert validate(data).ok


def test_validator_reads_bytes_and_binary_streams_like_paths(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl([CHAT, "oops", PC])
    data = path.read_bytes()
    reports = [validate(path), validate(str(path)), validate(data), validate(io.BytesIO(data))]
    assert len({tuple(r.problems) for r in reports}) == 1
    assert [p.line for p in reports[0].problems] == [2, 3]


def test_validator_refuses_a_text_stream() -> None:
    with pytest.raises(TypeError, match="binary stream"):
        validate(io.StringIO('{"prompt": "a", "completion": "b"}\n'))  # type: ignore[arg-type]  # the wrong type is the test


def test_validator_keeps_the_first_problems_and_counts_all_of_them() -> None:
    data = b"nope\n" * 1000
    report = validate(data, max_problems=10)
    assert len(report.problems) == 10 and report.num_problems == 1000 and report.truncated
    assert [p.line for p in report.problems] == list(range(1, 11))
    assert "990 more" in report.summary()


def test_validator_counts_a_long_run_of_blank_lines_past_the_cap() -> None:
    data = b'{"prompt": "a", "completion": "b"}\n' + b"\n" * 500 + b'{"prompt": "a", "completion": "b"}\n'
    report = validate(data, max_problems=5)
    assert report.num_problems == 500 and [p.line for p in report.problems] == [2, 3, 4, 5, 6]


def test_validator_skips_a_line_longer_than_the_limit_without_holding_it() -> None:
    long_line = b'{"prompt": "' + b"a" * 5000 + b'", "completion": "b"}'
    data = b'{"prompt": "a", "completion": "b"}\n' + long_line + b'\n{"prompt": "a", "completion": "b"}'
    report = validate(data, max_line_bytes=1000)
    assert [(p.line, p.message) for p in report.problems] == [(2, "line longer than 1000 bytes; skipped")]
    assert report.num_examples == 2


def test_validator_rejects_examples_longer_than_max_seq_length(
    write_jsonl: WriteJsonl, chatml_tokenizer: PreTrainedTokenizerBase
) -> None:
    long_chat = {
        "messages": [{"role": "user", "content": "hello " * 100}, {"role": "assistant", "content": "four"}]
    }
    path = write_jsonl([CHAT, long_chat, CHAT])
    assert validate(path).ok  # without a tokenizer, lengths are not checked
    report = validate(path, chatml_tokenizer, max_seq_length=64)
    problem = problem_at(report.problems, 2)
    assert "longer than max_seq_length=64" in problem.message and "never truncated" in problem.message
    assert report.num_examples == 2


def test_validator_reports_chat_examples_when_the_tokenizer_has_no_chat_template(
    write_jsonl: WriteJsonl, plain_tokenizer: PreTrainedTokenizerBase
) -> None:
    report = validate(write_jsonl([CHAT]), plain_tokenizer, max_seq_length=512)
    assert "no chat template" in problem_at(report.problems, 1).message


def test_validator_needs_both_tokenizer_and_max_seq_length(chatml_tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(ValueError, match="both"):
        validate(b"", chatml_tokenizer)


def test_validator_gives_missing_field_errors_on_a_non_conforming_real_file(tmp_path: Path) -> None:
    source = Path("/work/shared/data/sst2/train.jsonl")
    if not source.exists():
        pytest.skip("shared SST-2 data not available")
    with source.open("rb") as f:
        head = b"".join(f.readline() for _ in range(5))
    copy = tmp_path / "sst2_head.jsonl"
    copy.write_bytes(head)
    report = validate(copy)
    assert [p.line for p in report.problems] == [1, 2, 3, 4, 5]
    assert all(p.message.startswith("missing field: expected 'messages'") for p in report.problems)
    assert "'text', 'label'" in report.problems[0].message


def test_load_examples_returns_typed_examples_with_their_lines(write_jsonl: WriteJsonl) -> None:
    examples = load_examples(write_jsonl([CHAT, CHAT]))
    assert examples[1] == ChatExample(
        (Message("user", "What is two plus two?"), Message("assistant", "four")), line=2
    )
    assert load_examples(b'{"prompt": "p", "completion": "c", "id": 7}') == [
        PromptCompletionExample("p", "c", 1)
    ]


def test_load_examples_raises_with_the_report_when_invalid(write_jsonl: WriteJsonl) -> None:
    with pytest.raises(DataValidationError) as caught:
        load_examples(write_jsonl([CHAT, "{", PC]))
    assert [p.line for p in caught.value.report.problems] == [2, 3]
    assert "line 2: invalid JSON" in str(caught.value)
