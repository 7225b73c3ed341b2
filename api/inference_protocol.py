"""The internal protocol between the API and an inference server (JSON over HTTP).

The API resolves a public model id to a base model and, for a fine-tuned model or a
checkpoint, to an adapter directory the tenant owns; it sends that with the sampling
settings. The server answers one JSON object, or, when streaming, one JSON object per line
(NDJSON): token deltas, then a final line with the usage. No FastAPI or torch import here:
the API and the inference server import this module.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class AdapterRef(BaseModel):
    tenant: str
    adapter_id: str
    path: str  # the adapter directory, on storage the inference servers share with the workers


class GenerateBody(BaseModel):
    base_model: str
    adapter: AdapterRef | None = None
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    max_tokens: int = Field(default=16, ge=1)
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = []
    seed: int | None = None
    n: int = 1
    return_routing: str | None = None
    stream: bool = False


class ChoiceOut(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length", "cancelled"]
    routing: list[dict[str, Any]] | None = None


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResult(BaseModel):
    choices: list[ChoiceOut]
    usage: UsageOut


class DeltaLine(BaseModel):
    """One streamed line: a delta of one choice, or (type "usage") the final usage."""

    type: Literal["delta", "usage", "error"]
    index: int = 0
    text: str = ""
    finish_reason: Literal["stop", "length", "cancelled"] | None = None
    routing: dict[str, Any] | None = None
    usage: UsageOut | None = None
    error: dict[str, Any] | None = None
