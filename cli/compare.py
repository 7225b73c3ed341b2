"""`moetune compare --config compare.json --train-file F --valid-file F --output-dir DIR`.

Trains every variant of the comparison document for every seed on the same data, resuming
whatever an earlier call on DIR left, and writes DIR/report.md, DIR/results.json and the
figures. Exit status: 0 when every run succeeded, 1 when a run failed (the report still lists
it), 2 for an invalid document or arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the comparison document (JSON)")
    parser.add_argument("--train-file", type=Path, required=True)
    parser.add_argument("--valid-file", type=Path, required=True)
    parser.add_argument(
        "--output-dir", type=Path, required=True, help="rerun on the same directory to resume"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--cache-dir", type=Path, help="where built-in base models are cached")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing; rebuild the report from the finished runs"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="retrain runs that failed in an earlier call"
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep finished runs' checkpoints (default: adapter only)",
    )


def run(args: argparse.Namespace) -> int:
    from core.compare import CompareConfig, CompareConfigError, SweepError, run_comparison

    for name in ("train_file", "valid_file"):
        path: Path = getattr(args, name)
        if not path.is_file():
            print(f"error: --{name.replace('_', '-')}: {path} is not a file", file=sys.stderr)
            return 2
    try:
        config = CompareConfig.load(args.config)
    except OSError as err:
        print(f"error: --config: {err}", file=sys.stderr)
        return 2
    except CompareConfigError as err:
        print(f"error: {args.config}: {err}", file=sys.stderr)
        return 2
    try:
        result = run_comparison(
            config,
            args.train_file,
            args.valid_file,
            args.output_dir,
            device=args.device,
            cache_dir=args.cache_dir,
            train_runs=not args.report_only,
            retry_failed=args.retry_failed,
            keep_checkpoints=args.keep_checkpoints,
        )
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {result.report}")
    print(f"results: {result.results}")
    for figure in result.figures:
        print(f"figure: {figure}")
    if result.missing_runs:
        print(f"not trained yet: {', '.join(result.missing_runs)}", file=sys.stderr)
    if result.failed_runs:
        print(f"failed runs: {', '.join(result.failed_runs)} (see the report)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="moetune compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
