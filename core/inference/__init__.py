"""Serving many MoE-LoRA / LoRA adapters on one base model, batched (Punica/S-LoRA/LoRAX's idea
applied to the routed mixture of Sun et al., ICML 2025).

    from core.inference import Engine, GenerationRequest, AdapterKey

    engine = Engine("smollm2-135m-instruct", cache_budget_bytes=1 << 30, max_batch_size=8)
    engine.register_adapter(AdapterKey("tenant", "ft-abc"), "/runs/abc/adapter")
    [result] = engine.generate([GenerationRequest(prompt="Hi", adapter_key=AdapterKey("tenant", "ft-abc"))])

Modules, bottom up: `weights` (adapter files -> bank-ready tensors), `layer` (the multi-adapter
linear), `slots` (the slot table of one base model), `cache` (the LRU adapter cache), `store`
(registry + cache + slots), `batch` (forward passes with a KV cache), `text` and `sampling`
(detokenization, stop strings, next-token choice), `jobs` and `streams` (requests in flight and
their hand-off to callers), `engine` (the scheduler thread and the public API).
"""

from core.inference.cache import (
    AdapterCache,
    AdapterNotFoundError,
    AdapterTooLargeError,
    CacheFullError,
    CacheStats,
)
from core.inference.engine import Engine, EngineClosedError, EngineOverloadedError, EngineStats
from core.inference.requests import (
    Choice,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    TokenDelta,
    TokenRouting,
    Usage,
)
from core.inference.slots import BASE, LayerRouting, SlotTable
from core.inference.streams import AsyncGenerationStream, GenerationStream
from core.inference.weights import AdapterKey, ServingAdapter, read_serving_adapter

__all__ = [
    "BASE",
    "AdapterCache",
    "AdapterKey",
    "AdapterNotFoundError",
    "AdapterTooLargeError",
    "AsyncGenerationStream",
    "CacheFullError",
    "CacheStats",
    "Choice",
    "Engine",
    "EngineClosedError",
    "EngineOverloadedError",
    "EngineStats",
    "FinishReason",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStream",
    "LayerRouting",
    "ServingAdapter",
    "SlotTable",
    "TokenDelta",
    "TokenRouting",
    "Usage",
    "read_serving_adapter",
]
