"""Shared pieces of the benchmarks: timing, result rows, the table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Row:
    """One measured claim: `ours` against a `baseline` measured in the same run."""

    name: str
    ours: float
    baseline: float
    unit: str
    baseline_name: str
    target: str  # e.g. "<= 1.3x" or ">= 7x", on the ratio
    ratio_of: str = "ours/baseline"  # or "baseline/ours" (a speed-up)

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.ratio_of == "ours/baseline" else self.baseline / self.ours

    @property
    def passed(self) -> bool | None:
        if not self.target:
            return None
        op, value = self.target.split()
        bound = float(value.rstrip("x"))
        return self.ratio <= bound if op == "<=" else self.ratio >= bound


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn` in seconds."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def format_table(rows: list[Row]) -> str:
    header = ["claim", "ours", "baseline", "ratio", "target", "ok"]
    lines = [header]
    for r in rows:
        ok = "" if r.passed is None else ("yes" if r.passed else "NO")
        lines.append(
            [
                r.name,
                f"{r.ours:.4g} {r.unit}",
                f"{r.baseline:.4g} {r.unit} ({r.baseline_name})",
                f"{r.ratio:.2f}x ({r.ratio_of})",
                r.target,
                ok,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
