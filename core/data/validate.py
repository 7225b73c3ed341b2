"""Streaming validation of JSONL training files, shared by the API (uploads) and the trainer.

Every problem is reported with its 1-based line number, not just the first; at most
``max_problems`` are kept (all are counted), and the file is read one line at a time, with lines
capped at ``max_line_bytes``, so a huge broken upload costs bounded memory.

Rules beyond the record schema of :mod:`core.data.examples`:

- each line must be UTF-8 (a byte-order mark at the start of the file is accepted);
- blank lines at the end of the file are ignored; a blank line before a later example is a problem;
- one file holds one format: the first valid example fixes it, examples in the other are problems;
- a file without examples is a problem (reported on line 0, the file as a whole);
- given a tokenizer and ``max_seq_length``, each example is tokenised exactly as for training
  (:class:`core.data.tokenize.ExampleEncoder`) and one longer than ``max_seq_length`` tokens is
  REJECTED with its line number. Examples are never truncated: a cut-off answer would teach the
  model to stop mid-answer. (The dataset builder can instead drop them, see ``tokenize_examples``.)

This module does not import torch, so the API process can use it.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, TypeAlias

from core.data.examples import FORMAT_NAMES, Example, parse_record
from core.data.report import DEFAULT_MAX_PROBLEMS, DataValidationError, ValidationReport
from core.data.tokenize import ExampleEncoder, ExampleEncodingError, overlong_message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Source: TypeAlias = str | os.PathLike[str] | bytes | bytearray | IO[bytes]
"""A path, the file's bytes, or a binary stream (read from its current position, left open)."""

DEFAULT_MAX_LINE_BYTES = 16 * 2**20
_BOM = b"\xef\xbb\xbf"


def validate(
    source: Source,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_seq_length: int | None = None,
    *,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> ValidationReport:
    """Validate a JSONL data file and report every problem by line.

    Args:
        source: a path, the file's bytes, or a binary stream.
        tokenizer: with ``max_seq_length``, also reject examples longer than that many tokens.
        max_seq_length: the longest example, in tokens, that training accepts.
        max_problems: how many problems the report keeps (it counts all of them).
        max_line_bytes: longer lines are reported and skipped without being held in memory.
    """
    report = ValidationReport(max_problems=max_problems)
    for _ in _scan(source, report, tokenizer, max_seq_length, max_line_bytes):
        pass
    return report


def load_examples(
    source: Source,
    *,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[Example]:
    """Validate and parse a data file in one pass; raise :class:`DataValidationError` if it is invalid.

    Lengths are not checked here: ``tokenize_examples`` applies the over-long policy.
    """
    report = ValidationReport(max_problems=max_problems)
    examples = list(_scan(source, report, None, None, max_line_bytes))
    if not report.ok:
        raise DataValidationError(report)
    return examples


def _scan(
    source: Source,
    report: ValidationReport,
    tokenizer: PreTrainedTokenizerBase | None,
    max_seq_length: int | None,
    max_line_bytes: int,
) -> Iterator[Example]:
    """Yield the valid examples of ``source`` and record the problems in ``report``."""
    if (tokenizer is None) != (max_seq_length is None):
        raise ValueError("the length check needs both a tokenizer and max_seq_length")
    encoder = ExampleEncoder(tokenizer) if tokenizer is not None else None
    first_line = 0
    blank_from: int | None = None  # first line of the current run of blank lines
    with _binary_stream(source) as stream:
        for line, raw in _lines(stream, max_line_bytes):
            if raw is not None and not raw.strip():
                blank_from = blank_from or line
                continue
            if blank_from is not None:
                report.add_many(
                    range(blank_from, line), None, "blank line; remove it or put an example on it"
                )
                blank_from = None
            if first_line == 0:
                first_line = line
            example = _parse_line(line, raw, report, max_line_bytes)
            if example is None:
                continue
            if report.format is None:
                report.format = example.format
            elif example.format != report.format:
                report.add(
                    line,
                    None,
                    f"mixed formats: this example is {FORMAT_NAMES[example.format]} but the file's first "
                    f"example is {FORMAT_NAMES[report.format]}; use one format per file",
                )
                continue
            if encoder is not None and max_seq_length is not None:
                try:
                    length = len(encoder.encode(example).input_ids)
                except ExampleEncodingError as err:
                    report.add(line, None, str(err))
                    continue
                if length > max_seq_length:
                    report.add(line, None, overlong_message(length, max_seq_length))
                    continue
            report.num_examples += 1
            yield example
    if first_line == 0:
        report.add(0, None, "empty file: no examples")


def _parse_line(
    line: int, raw: bytes | None, report: ValidationReport, max_line_bytes: int
) -> Example | None:
    if raw is None:
        report.add(line, None, f"line longer than {max_line_bytes} bytes; skipped")
        return None
    if line == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        report.add(
            line, None, f"not valid UTF-8: byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the line"
        )
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        report.add(line, None, f"invalid JSON: {err.msg} at column {err.colno}")
        return None
    except RecursionError:
        report.add(line, None, "invalid JSON: nested too deeply")
        return None
    example, problems = parse_record(record, line)
    for field, message in problems:
        report.add(line, field, message)
    return example


def _lines(stream: IO[bytes], max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line number, bytes)``; the bytes are None for a line over ``max_line_bytes``."""
    line = 0
    while chunk := stream.readline(max_line_bytes + 1):
        if not isinstance(chunk, bytes):
            raise TypeError("validate() needs a binary stream (open the file with 'rb')")
        line += 1
        if len(chunk) <= max_line_bytes or chunk.endswith(b"\n"):
            yield line, chunk
            continue
        while chunk and not chunk.endswith(b"\n"):
            chunk = stream.readline(max_line_bytes + 1)
        yield line, None


@contextmanager
def _binary_stream(source: Source) -> Iterator[IO[bytes]]:
    if isinstance(source, bytes | bytearray):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield f
    else:
        yield source
