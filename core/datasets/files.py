"""JSONL reading and writing, sampling, and whole-file conversion.

Sampling keeps the source order: ``sample_random`` draws a seeded subset of positions and
returns it sorted, so the result is reproducible and the trainer's own seeded order is the
only shuffle.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from core.datasets.convert import Converter, RecordError

T = TypeVar("T")
Sampling = Literal["first", "random"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSONL file; blank lines are skipped, anything else must be a JSON object."""
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError("record", f"invalid JSON ({err.msg})", line_no) from None
            if not isinstance(record, dict):
                raise RecordError("record", f"expected a JSON object, got {type(record).__name__}", line_no)
            records.append(record)
    return records


def write_jsonl(records: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write records one per line, atomically (a temp file renamed into place); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def sample_first(items: Sequence[T], n: int | None) -> list[T]:
    """The first `n` items (all of them when `n` is None or larger than the sequence)."""
    _check_n(n)
    return list(items if n is None else items[:n])


def sample_random(items: Sequence[T], n: int | None, seed: int) -> list[T]:
    """`n` items drawn without replacement with `random.Random(seed)`, in source order."""
    _check_n(n)
    if n is None or n >= len(items):
        return list(items)
    picked = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in picked]


def sample(items: Sequence[T], n: int | None, how: Sampling = "first", seed: int = 0) -> list[T]:
    """`sample_first` or `sample_random`, by name."""
    if how == "first":
        return sample_first(items, n)
    if how == "random":
        return sample_random(items, n, seed)
    raise ValueError(f"sampling: expected 'first' or 'random', got {how!r}")


def convert_records(records: Iterable[Mapping[str, Any]], converter: Converter) -> list[dict[str, str]]:
    """Apply `converter` to each record; a `RecordError` carries the record's 1-based position."""
    out: list[dict[str, str]] = []
    for line_no, record in enumerate(records, start=1):
        try:
            out.append(converter(record))
        except RecordError as err:
            raise RecordError(err.field, err.message, line_no) from None
    return out


def convert_file(
    source: Path,
    target: Path,
    converter: Converter,
    *,
    n: int | None = None,
    sampling: Sampling = "first",
    seed: int = 0,
) -> int:
    """Convert a JSONL file to prompt/completion JSONL, keeping `n` records; returns how many were written.

    Args:
        source: JSONL in the converter's schema (e.g. ``shared/data/sst2/train.jsonl``).
        target: the prompt/completion file to write (its directory is created).
        converter: e.g. ``MultipleChoice()`` or ``Classification(("negative", "positive"))``.
        n: how many records to keep; None keeps all.
        sampling: "first" keeps the first `n`; "random" a seeded random `n`, in source order.
        seed: the seed of "random".

    Raises:
        RecordError: a record (any, not only sampled ones) lacks the schema; names line and field.
    """
    converted = convert_records(read_jsonl(source), converter)
    return write_jsonl(sample(converted, n, sampling, seed), target)


def _check_n(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"n: expected a non-negative integer or None, got {n!r}")
