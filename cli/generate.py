"""`moetune generate [--adapter DIR] [--model REF] --prompt "..."`: a quick look at an adapter."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", type=Path, help="an adapter directory (omit for the base model)")
    parser.add_argument("--model", help="base model (default: the one the adapter was trained on)")
    parser.add_argument("--prompt", required=True, help="a user message (sent through the chat template)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device")


def load(adapter: Path | None, model_ref: str | None, device: str | None):  # type: ignore[no-untyped-def]
    """(model, tokenizer) with the adapter applied; the base model comes from the adapter's metadata."""
    import json

    from core import load_adapter
    from core.adapters import MOETUNE_CONFIG_NAME
    from core.models import resolve_model

    if model_ref is None:
        if adapter is None:
            raise SystemExit("error: give --model or --adapter")
        model_ref = json.loads((adapter / MOETUNE_CONFIG_NAME).read_text()).get("base_model")
        if not model_ref:
            raise SystemExit(f"error: {adapter} does not name its base model; pass --model")
    loaded = resolve_model(model_ref, device=device)
    model = load_adapter(loaded.model, adapter) if adapter is not None else loaded.model
    return model.eval(), loaded.tokenizer


def run(args: argparse.Namespace) -> int:
    from core.trainer.evaluate import generate_greedy

    model, tokenizer = load(args.adapter, args.model, args.device)
    messages = [{"role": "user", "content": args.prompt}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    device = next(model.parameters()).device
    print(generate_greedy(model, tokenizer, [list(ids)], args.max_new_tokens, device)[0])
    return 0
