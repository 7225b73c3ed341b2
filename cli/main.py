"""`moetune`: the command line. Subcommands load their modules on use, so `moetune keys` does
not import torch and `moetune train` does not import the web stack."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with `add_arguments(parser)` and `run(args) -> int`, help)
COMMANDS = {
    "train": ("cli.train", "fine-tune a base model on a JSONL file"),
    "eval": ("cli.evaluate", "evaluate an adapter on a validation file"),
    "generate": ("cli.generate", "generate with a base model and an optional adapter"),
    "models": ("cli.models", "prepare built-in base models (moetune models pull NAME)"),
    "keys": ("cli.keys", "manage API keys (moetune keys create --tenant NAME)"),
    "up": ("cli.service", "run the embedded service: the API and a worker, no servers to install"),
    "worker": ("cli.worker", "run a Celery training worker"),
    "db": ("cli.db", "database migrations (moetune db upgrade)"),
    "compare": ("cli.compare", "train job variants over seeds on the same data and report"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moetune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module)
        _load(module).add_arguments(command)
    return parser


def _load(module: str):  # type: ignore[no-untyped-def]  # a module object
    return importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_load(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
