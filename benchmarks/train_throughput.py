"""Training throughput on SmolLM2-135M (batch 4 x 128 tokens, q/k/v/o adapted, SGD).

LoRA r=4; MoE-LoRA E=8 k=2 r=4; MoE-LoRA E=20 k=10 r=4 (the paper's), each with and without
the preconditioner, each in its own process (median of 3 steps after a warm-up step).
Targets: E=20 k=10 step <= 1.3x the LoRA step, peak memory <= 1.1x; the preconditioner adds
<= 10% to a step.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import Row
from benchmarks.train_step import BATCH, CONFIGS, SEQ


def _measure(name: str, preconditioner: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_step", name, preconditioner],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(quick: bool = False) -> list[Row]:
    results = {(name, pre): _measure(name, pre) for name in CONFIGS for pre in ("none", "riemannian")}
    shape = f"{BATCH}x{SEQ} tokens"
    rows = []
    for name in CONFIGS:
        with_p, without = results[(name, "riemannian")], results[(name, "none")]
        rows.append(
            Row(
                f"train step {name}, {shape}: preconditioner overhead",
                with_p["step_s"],
                without["step_s"],
                "s",
                "same adapter, no preconditioner",
                "<= 1.1x",
            )
        )
    lora, moe = results[("lora_r4", "riemannian")], results[("moe_e20_k10", "riemannian")]
    rows.append(
        Row(
            f"train step moe_e20_k10 vs lora_r4, {shape}",
            moe["step_s"],
            lora["step_s"],
            "s",
            "LoRA r=4",
            "<= 1.3x",
        )
    )
    rows.append(
        Row(
            f"peak memory moe_e20_k10 vs lora_r4, {shape}",
            moe["peak_mib"],
            lora["peak_mib"],
            "MiB",
            "LoRA r=4",
            "<= 1.1x",
        )
    )
    e8 = results[("moe_e8_k2", "riemannian")]
    rows.append(
        Row(f"train step moe_e8_k2 vs lora_r4, {shape}", e8["step_s"], lora["step_s"], "s", "LoRA r=4", "")
    )
    for (name, pre), r in results.items():
        rows.append(
            Row(
                f"tokens/s {name} ({pre})",
                r["tokens_per_s"],
                results[("lora_r4", "none")]["tokens_per_s"],
                "tok/s",
                "LoRA r=4, no preconditioner",
                "",
            )
        )
    return rows
