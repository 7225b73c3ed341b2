"""Training-step throughput and peak memory on SmolLM2-135M, one configuration per process.

    python -m benchmarks.train_step CONFIG   -> one JSON line: median step seconds, tokens/s, peak RSS

Run by `benchmarks.train_throughput`, which starts a fresh process per configuration so that
each peak-memory reading is that configuration's own (ru_maxrss of the process; on a GPU,
torch's allocator peak).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import torch

from core import MoELoRAConfig, add_moe_lora, create_optimizer
from core.models import resolve_model
from core.trainer.evaluate import token_loss_sums

BATCH, SEQ = 4, 128  # 512 tokens a step: ~5 s on 2 CPU cores, so the suite stays a few minutes
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
CONFIGS = {
    "lora_r4": {"adapter_type": "lora", "rank": 4},
    "moe_e8_k2": {"num_experts": 8, "top_k": 2, "rank": 4},
    "moe_e20_k10": {"num_experts": 20, "top_k": 10, "rank": 4},
}


def measure(name: str, preconditioner: str, steps: int = 3, warmup: int = 1) -> dict[str, float]:
    torch.manual_seed(0)
    loaded = resolve_model("smollm2-135m-instruct")
    model, device = loaded.model, loaded.device
    add_moe_lora(model, MoELoRAConfig(target_modules=TARGETS, dropout=0.05, **CONFIGS[name]))  # type: ignore[arg-type]
    opt = create_optimizer(model, "sgd", preconditioner, lr=1e-4, router_lr=1e-5, router_max_grad_norm=1.0)
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (BATCH, SEQ), device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss, tokens, _ = token_loss_sums(model(input_ids=ids).logits, ids)
        (loss / tokens).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"step_s": step, "tokens_per_s": BATCH * SEQ / step, "peak_mib": peak}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
