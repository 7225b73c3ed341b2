"""What the engine takes and gives back: requests, streamed deltas, final results.

The fields follow OpenAI's completions API (max_tokens, temperature, top_p, stop, seed, n)
so the service maps them one to one; `return_routing` is ours: the experts each generated
token was routed to. Requests are validated on creation; a wrong value raises `ValueError`
whose message starts with the field name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.inference.slots import LayerRouting
from core.inference.weights import AdapterKey

FinishReason = Literal["stop", "length", "cancelled"]
TokenRouting = dict[str, LayerRouting]  # module name -> experts and gates, for one token


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete, with one adapter (or none) and its sampling settings.

    Args:
        prompt_ids: the prompt as token ids; exactly one of prompt_ids, prompt, messages.
        prompt: the prompt as text (tokenized with the tokenizer's special tokens).
        messages: chat messages ({"role", "content"}), rendered with the chat template.
        adapter_key: the adapter to run; None runs the base model.
        max_tokens: the most tokens generated per choice.
        temperature: 0 is greedy; otherwise the softmax temperature.
        top_p: nucleus sampling mass (1 = off).
        stop: strings that end a choice; the text is cut before the first one.
        seed: seeds each choice's generator (same seed, same text); None draws fresh entropy.
        n: number of choices.
        return_routing: None, "all" (every routed module) or one module name, e.g.
            "model.layers.3.self_attn.q_proj": top-k experts and gates of each generated token.
    """

    prompt_ids: Sequence[int] | None = None
    prompt: str | None = None
    messages: Sequence[Mapping[str, str]] | None = None
    adapter_key: AdapterKey | None = None
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: Sequence[str] = ()
    seed: int | None = None
    n: int = 1
    return_routing: str | None = None

    def __post_init__(self) -> None:
        given = [f for f in ("prompt_ids", "prompt", "messages") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(f"prompt: give exactly one of prompt_ids, prompt, messages (got {given})")
        if self.prompt_ids is not None and (
            not self.prompt_ids or not all(isinstance(t, int) and t >= 0 for t in self.prompt_ids)
        ):
            raise ValueError("prompt_ids: expected a non-empty list of token ids")
        if self.prompt is not None and not self.prompt:
            raise ValueError("prompt: must not be empty")
        if self.messages is not None and (
            not self.messages or not all("role" in m and "content" in m for m in self.messages)
        ):
            raise ValueError("messages: expected a non-empty list of {'role', 'content'} objects")
        _check_int("max_tokens", self.max_tokens, 1)
        _check_int("n", self.n, 1)
        if not _finite(self.temperature) or not 0.0 <= self.temperature <= 100.0:
            raise ValueError(f"temperature: expected a number in [0, 100], got {self.temperature!r}")
        if not _finite(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError("stop: expected a list of non-empty strings")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"seed: expected an integer, got {self.seed!r}")
        if self.return_routing is not None and not self.return_routing:
            raise ValueError("return_routing: expected 'all' or a module name")


@dataclass(frozen=True)
class TokenDelta:
    """One step of one choice while streaming: the new token(s) and the text they completed.

    `text` may be "" (a character split across tokens, or a possible stop string held back);
    the deltas of a choice concatenate to its final text. The last delta of a choice carries
    its `finish_reason`.
    """

    index: int  # the choice
    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None = None
    routing: TokenRouting | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Choice:
    """One finished completion. `token_ids` keeps every generated token (an EOS too)."""

    index: int
    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    routing: list[TokenRouting] | None = None  # one entry per generated token


@dataclass
class GenerationResult:
    choices: list[Choice]
    usage: Usage
    adapter_key: AdapterKey | None = None
    extra: dict[str, float] = field(default_factory=dict)  # timings: queue_s, first_token_s, total_s


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
