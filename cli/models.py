"""`moetune models pull NAME`: fetch and convert a built-in base model ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True)
    pull = sub.add_parser("pull", help="download and convert a built-in model into the cache")
    pull.add_argument("name")
    pull.add_argument("--cache-dir", type=Path)
    sub.add_parser("list", help="the built-in models")


def run(args: argparse.Namespace) -> int:
    from core.models import BUILTIN_MODELS, pull_model

    if args.models_command == "list":
        for name in sorted(BUILTIN_MODELS):
            print(name)
        return 0
    if args.name not in BUILTIN_MODELS:
        print(f"error: {args.name!r} is not a built-in model ({', '.join(sorted(BUILTIN_MODELS))})")
        return 2
    print(pull_model(args.name, args.cache_dir))
    return 0
