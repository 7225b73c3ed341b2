"""Run the benchmarks and print one table of ratios, each measured against a baseline in the same run.

    python -m benchmarks.run [--quick] [--only core_layer,core_optimizer] [--json out.json]

Timings are medians of repeated runs; run on an otherwise idle machine (on a 2-core CPU a
second busy process distorts small-kernel timings several-fold). Each suite runs in a fresh
Python process, so that one suite's large allocations, caches and thread pools cannot
weigh on the next one's timings (`--in-process` runs them all here, for debugging).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.common import Row, format_table

SUITES = ["core_layer", "core_optimizer", "core_memory", "train_throughput", "inference"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", default="", help="comma-separated suites: " + ", ".join(SUITES))
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    parser.add_argument("--in-process", action="store_true", help="run every suite in this process")
    args = parser.parse_args(argv)
    suites = [s for s in args.only.split(",") if s] or SUITES
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"--only: unknown suite {unknown[0]!r}")
    dev = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"# moetune benchmarks: torch {torch.__version__}, {dev}, {platform.machine()}", flush=True)
    rows: list[Row] = []
    for suite in suites:
        print(f"running {suite} ...", file=sys.stderr, flush=True)
        rows += run_suite(suite, args.quick) if not args.in_process else _run_here(suite, args.quick)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"ratio": r.ratio, "passed": r.passed} for r in rows], f, indent=2)
    return 0


def _run_here(suite: str, quick: bool) -> list[Row]:
    rows: list[Row] = importlib.import_module(f"benchmarks.{suite}").run(quick=quick)
    return rows


def run_suite(suite: str, quick: bool) -> list[Row]:
    """Run one suite in a fresh interpreter (`python -m benchmarks.run --suite-worker ...`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "benchmarks.run", "--suite-worker", suite, str(out)]
        subprocess.run(
            cmd + (["--quick"] if quick else []), check=True, cwd=Path(__file__).resolve().parents[1]
        )
        return [Row(**row) for row in json.loads(out.read_text())]


def suite_worker(argv: list[str]) -> int:
    """The child side of `run_suite`: run the suite, write its rows as JSON."""
    suite, out, *rest = argv
    rows = _run_here(suite, quick="--quick" in rest)
    Path(out).write_text(json.dumps([asdict(r) for r in rows]))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--suite-worker"]:
    raise SystemExit(suite_worker(sys.argv[2:]))
if __name__ == "__main__":
    raise SystemExit(main())
