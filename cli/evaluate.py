"""`moetune eval --adapter DIR --valid-file F`: validation loss, token accuracy, exact match."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", type=Path, help="an adapter directory (omit to evaluate the base model)")
    parser.add_argument("--model", help="base model (default: the one the adapter was trained on)")
    parser.add_argument("--valid-file", type=Path, required=True)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--max-examples", type=int, default=200, help="for exact match (generation is slow)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device")


def run(args: argparse.Namespace) -> int:
    from cli.generate import load
    from core.data import eval_examples, load_examples, tokenize_examples
    from core.data.collate import PaddingCollator
    from core.trainer.evaluate import evaluate_exact_match, evaluate_loss

    model, tokenizer = load(args.adapter, args.model, args.device)
    device = next(model.parameters()).device
    examples = load_examples(args.valid_file)
    dataset = tokenize_examples(examples, tokenizer, args.max_seq_length, "drop")
    result = evaluate_loss(model, dataset, PaddingCollator.from_tokenizer(tokenizer), args.batch_size, device)
    result |= evaluate_exact_match(model, tokenizer, eval_examples(examples[: args.max_examples], tokenizer),
                                   args.max_new_tokens, device, args.batch_size)  # fmt: skip
    result["examples"] = len(dataset)
    result["dropped_overlong"] = dataset.num_dropped
    print(json.dumps(result, indent=2))
    return 0
