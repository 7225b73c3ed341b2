"""Run the benchmarks and print one table of ratios, each measured against a baseline in the same run.

    python -m benchmarks.run [--quick] [--only core_layer,core_optimizer] [--json out.json]

Timings are medians of repeated runs; run on an otherwise idle machine (on a 2-core CPU a
second busy process distorts small-kernel timings several-fold).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from dataclasses import asdict

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
        rows += importlib.import_module(f"benchmarks.{suite}").run(quick=args.quick)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"ratio": r.ratio, "passed": r.passed} for r in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
