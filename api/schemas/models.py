from __future__ import annotations

from typing import Literal

from api.schemas.common import Identified, ListEnvelope


class ModelPublic(Identified):
    """OpenAI's model object; `parent` is the base model of a fine-tuned adapter (as vLLM's)."""

    object: Literal["model"] = "model"
    created: int
    owned_by: str
    parent: str | None = None
    adapter_type: Literal["moe_lora", "lora"] | None = None
    job_id: str | None = None


class ModelList(ListEnvelope[ModelPublic]):
    pass
