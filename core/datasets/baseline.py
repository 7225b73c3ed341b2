"""The majority-class baseline: the exact-match accuracy of always answering the most frequent completion.

Completions are compared as the trainer's exact match compares them (surrounding whitespace
stripped), so the number sits on the same scale as ``valid_exact_match``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.files import read_jsonl


@dataclass(frozen=True)
class MajorityBaseline:
    """The most frequent completion, its share of the examples, and the count of every completion."""

    completion: str
    accuracy: float
    examples: int
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "completion": self.completion,
            "accuracy": self.accuracy,
            "examples": self.examples,
            "counts": dict(self.counts),
        }


def majority_class_baseline(records: Iterable[Mapping[str, Any]]) -> MajorityBaseline:
    """Baseline of prompt/completion records; ties go to the alphabetically first completion."""
    counts: Counter[str] = Counter()
    for i, record in enumerate(records, start=1):
        completion = record.get("completion")
        if not isinstance(completion, str):
            raise ValueError(f"record {i}: completion: expected a string, got {completion!r}")
        counts[completion.strip()] += 1
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no records: the majority class of an empty set is undefined")
    best, best_count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return MajorityBaseline(best, best_count / total, total, dict(sorted(counts.items())))


def majority_class_baseline_file(path: Path, limit: int | None = None) -> MajorityBaseline:
    """Baseline of the first `limit` records of a prompt/completion JSONL file (all when None).

    Pass the evaluation's own limit (``eval_max_examples``) to score the same examples as
    the trainer's exact match.
    """
    records = read_jsonl(path)
    return majority_class_baseline(records if limit is None else records[:limit])
