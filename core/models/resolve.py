"""Resolve a base-model reference (built-in name, local directory, hub id) to a loaded model.

Resolution order: a built-in name (`BUILTIN_MODELS`) wins over a same-named directory in the
working directory (write `./name` for the directory), then an existing local directory with a
`config.json`, then an `org/name` hub id.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from core.models.errors import HubUnreachableError, ModelNotFoundError, ModelResolutionError
from core.models.pull import pull_model
from core.models.registry import BUILTIN_MODELS

DtypeArg = torch.dtype | str | None
DeviceArg = str | torch.device | None

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class LoadedModel:
    """A base model ready for adapter injection, with its tokenizer and where it came from.

    `name` is the built-in name or hub id as given, or the absolute path of a local directory.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    path: Path
    dtype: torch.dtype
    device: torch.device


def default_device() -> torch.device:
    """`cuda` when a GPU is visible, else `cpu`."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a GPU that supports it, float32 everywhere else."""
    # bf16 halves memory with fp32's exponent range, so training needs no loss scaling;
    # fp16 would, and CPU bf16 matmuls are slower than fp32 on most hosts, so both fall back to fp32.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def parse_dtype(value: torch.dtype | str) -> torch.dtype | Literal["auto"]:
    """A floating dtype from a `torch.dtype` or a name ("float32", "bf16", "torch.float16", "auto", ...).

    "auto" means the dtype stored in the checkpoint (`config.json`'s `dtype`).
    """
    if isinstance(value, torch.dtype):
        if not value.is_floating_point:
            raise ValueError(f"dtype must be a floating type, got {value}")
        return value
    name = value.strip().lower().removeprefix("torch.")
    if name == "auto":
        return "auto"
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {value!r}; use one of {', '.join(['auto', *_DTYPES])}")
    return _DTYPES[name]


def resolve_model(
    ref: str,
    *,
    dtype: DtypeArg = None,
    device: DeviceArg = None,
    cache_dir: Path | None = None,
) -> LoadedModel:
    """Load the base model and tokenizer that `ref` names.

    Args:
        ref: a built-in name (e.g. ``"smollm2-135m-instruct"``, fetched and converted once into
            the cache), a local Hugging Face model directory, or a hub id ``org/name``.
        dtype: weights dtype; default bfloat16 on a bf16-capable GPU, else float32.
        device: default ``cuda`` when available, else ``cpu``.
        cache_dir: cache root for built-ins; default `$MOETUNE_CACHE_DIR`, else `~/.cache/moetune`.

    Raises:
        ModelNotFoundError: `ref` names nothing loadable (also a `ValueError`).
        HubUnreachableError: `ref` is a hub id and the hub cannot be reached.
    """
    dev = torch.device(device) if device is not None else default_device()
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {dev} requested but CUDA is not available on this machine")
    want = default_dtype(dev) if dtype is None else parse_dtype(dtype)

    if ref in BUILTIN_MODELS:
        path = pull_model(ref, cache_dir)
        model, tokenizer = _load(path, want, dev, local_files_only=True)
        return _finish(model, tokenizer, ref, path, dev)
    local = Path(ref).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(f"{ref!r} is a directory without config.json, not a Hugging Face model")
        path = local.resolve()
        model, tokenizer = _load(path, want, dev, local_files_only=True)
        return _finish(model, tokenizer, str(path), path, dev)
    if _HUB_ID.match(ref):
        model, tokenizer = _load_from_hub(ref, want, dev)
        return _finish(model, tokenizer, ref, _hub_snapshot_dir(ref), dev)
    known = ", ".join(sorted(BUILTIN_MODELS))
    raise ModelNotFoundError(
        f"model {ref!r} not found: not a built-in ({known}), a local directory, or an org/name hub id"
    )


def hub_offline() -> bool:
    """Whether `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` is set now."""
    # Read at call time: huggingface_hub reads these once, at import.
    return any(
        os.environ.get(k, "").strip().lower() in _TRUTHY for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _load(
    source: str | Path, dtype: torch.dtype | Literal["auto"], device: torch.device, *, local_files_only: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    # device_map places weights straight onto the device instead of staging them all on the host.
    # transformers 5.24 does not forward local_files_only to its PEFT adapter_config.json probe,
    # which then retries the hub for ~25 s before giving up; adapter_kwargs passes it through.
    model = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=dtype,
        device_map=device,
        local_files_only=local_files_only,
        adapter_kwargs={"local_files_only": local_files_only},
    )
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    return model, tokenizer


def _load_from_hub(
    ref: str, dtype: torch.dtype | Literal["auto"], device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    offline = hub_offline()
    try:
        # Offline, a copy already in the Hugging Face cache still loads.
        return _load(ref, dtype, device, local_files_only=offline)
    except OSError as exc:
        causes = _cause_names(exc)
        if "LocalEntryNotFoundError" in causes:
            why = "HF_HUB_OFFLINE is set" if offline else "the network request failed"
            builtins = ", ".join(sorted(BUILTIN_MODELS))
            raise HubUnreachableError(
                f"cannot load {ref!r}: this machine cannot reach the Hugging Face Hub ({why}) and the "
                f"model is not in the local Hugging Face cache (nor is there a local directory of that name). Use a built-in model ({builtins}) or "
                f"the path of a local model directory (config.json, weights, tokenizer files)."
            ) from exc
        if "RepositoryNotFoundError" in causes:
            raise ModelNotFoundError(f"hub repository {ref!r} not found (or private)") from exc
        raise ModelResolutionError(f"cannot load {ref!r} from the hub: {exc}") from exc


def _cause_names(exc: BaseException) -> set[str]:
    # transformers re-raises hub errors as a bare OSError; the reason is in the chain.
    names: set[str] = set()
    seen: BaseException | None = exc
    while seen is not None and type(seen).__name__ not in names:
        names.add(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return names


def _hub_snapshot_dir(ref: str) -> Path:
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(ref, "config.json")
    return Path(config).parent if isinstance(config, str) else Path(ref)


def _finish(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    path: Path,
    device: torch.device,
) -> LoadedModel:
    if tokenizer.pad_token is None:
        # No new token: adding one would resize the embeddings and change the base model.
        # unk (when distinct from eos) keeps padding apart from end-of-sequence; else eos.
        fallback = tokenizer.unk_token if tokenizer.unk_token not in (None, tokenizer.eos_token) else None
        tokenizer.pad_token = fallback or tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    # Training forwards build no KV cache (memory, and gradient checkpointing rejects it);
    # generate() reads generation_config.use_cache, which stays on.
    model.config.use_cache = False
    if model.generation_config is not None:
        model.generation_config.use_cache = True
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, path=path, dtype=model.dtype, device=model.device
    )
