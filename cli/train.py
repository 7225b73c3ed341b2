"""`moetune train --config job.json --train-file F [--valid-file F] --output-dir DIR [--resume]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the job document (JSON)")
    parser.add_argument("--train-file", type=Path, required=True)
    parser.add_argument("--valid-file", type=Path)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output-dir"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from core.jobs import JobSpec, JobSpecError

    try:
        spec = JobSpec.from_dict(json.loads(args.config.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: --config: {err}", file=sys.stderr)
        return 2
    except JobSpecError as err:
        print(f"error: {args.config}: {err}", file=sys.stderr)
        return 2
    if not args.resume and (args.output_dir / "checkpoints").exists():
        print(f"error: {args.output_dir} holds a run already; pass --resume to continue it", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from core.trainer import JsonlSink, Progress, TrainingFailure, train

    bar = tqdm(total=None, unit="step", dynamic_ncols=True, file=sys.stderr)

    def show(p: Progress) -> None:
        bar.total = p.total_steps
        bar.n = p.step
        bar.set_postfix(
            loss=f"{p.loss:.4f}", tok_s=f"{p.tokens_per_second:.0f}", epoch=f"{p.epoch:.2f}", refresh=False
        )
        bar.refresh()

    try:
        result = train(
            spec,
            args.train_file,
            args.output_dir,
            valid_file=args.valid_file,
            sink=JsonlSink(args.output_dir),
            progress=show,
            resume=args.resume,
            device=args.device,
        )
    except TrainingFailure as failure:
        bar.close()
        print(f"training failed ({failure.kind}): {failure.message}", file=sys.stderr)
        return 1
    bar.close()
    summary = {"status": result.status, "steps": result.steps, "tokens_seen": result.tokens_seen,
               "adapter": str(result.adapter_dir) if result.adapter_dir else None,
               "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
               "final_metrics": result.final_metrics}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0
