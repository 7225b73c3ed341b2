"""Next-token choice per row: greedy (temperature 0) or temperature + nucleus (top-p) sampling.

Each sampled row draws from its own `torch.Generator`, seeded from the request's `seed`, so a
seeded request gives the same tokens whatever else shares its batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor


def make_generator(seed: int | None, choice: int, device: torch.device) -> torch.Generator:
    """A generator for choice `choice` of a request; unseeded requests get fresh entropy."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    elif choice == 0:
        generator.manual_seed(seed)
    else:  # the n choices of one seeded request must differ, and stay reproducible
        digest = hashlib.blake2b(f"{seed}:{choice}".encode(), digest_size=8).digest()
        generator.manual_seed(int.from_bytes(digest) >> 1)
    return generator


def sample_next(
    logits: Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """One token per row of `logits` [B, V]."""
    logits = logits.float()  # softmax in float32: bf16 loses the tail the sampler draws from
    chosen = logits.argmax(dim=-1)  # [B]
    for row, (temperature, top_p, generator) in enumerate(zip(temperatures, top_ps, generators, strict=True)):
        if temperature == 0.0:
            continue
        probs = torch.softmax(logits[row] / temperature, dim=-1)  # [V]
        if top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)  # [V]
            # Keep the smallest head whose mass reaches top_p (always at least the first token).
            sorted_p = sorted_p.masked_fill(sorted_p.cumsum(0) - sorted_p >= top_p, 0.0)
            pick = order[torch.multinomial(sorted_p, 1, generator=generator)]
        else:
            pick = torch.multinomial(probs, 1, generator=generator)
        chosen[row] = pick[0]
    out: list[int] = chosen.tolist()
    return out
