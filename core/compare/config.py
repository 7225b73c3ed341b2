"""The comparison document: seeds, a base job document, and named variants deep-merged into it.

    {"seeds": [1, 2, 3],
     "base": {"model": "smollm2-135m-instruct", "hyperparameters": {...}, "adapter": {...}},
     "variants": {"sgd-classic": {"optimizer": {"type": "sgd", "gate_strategy": "classic"}},
                  "sgd-rescaled": {"optimizer": {"type": "sgd", "gate_strategy": "gate_rescaled"}}}}

Every variant is merged into ``base`` (objects merge key by key, anything else replaces) and
validated with ``JobSpec.from_dict`` before any training starts. The job's ``seed`` comes from
``seeds`` only, so every variant trains on the same batches in the same order for each seed.
Everything that decides what the validation scores mean (the model, its dtype, sequence
length, truncation, and the evaluation limits) must be the same in every variant.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.jobs import JobSpec, JobSpecError

VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_SEED = 2**32 - 1
# Fields every variant must share: they decide which examples are scored and how.
SHARED_FIELDS = (
    ("model",),
    ("dtype",),
    ("hyperparameters", "max_seq_length"),
    ("hyperparameters", "truncation"),
    ("hyperparameters", "eval_max_examples"),
    ("hyperparameters", "eval_max_new_tokens"),
)


class CompareConfigError(ValueError):
    """An invalid comparison document; names the variant (when one is at fault) and the dotted field."""

    def __init__(self, field: str, message: str, variant: str | None = None) -> None:
        where = f"variant {variant!r}: " if variant is not None else ""
        super().__init__(f"{where}{field}: {message}")
        self.field, self.message, self.variant = field, message, variant


@dataclass(frozen=True)
class CompareConfig:
    """A validated comparison: `seeds`, the `base` document and each variant's overrides, in order."""

    seeds: tuple[int, ...]
    base: dict[str, Any]
    variants: dict[str, dict[str, Any]]

    @classmethod
    def from_dict(cls, data: object) -> CompareConfig:
        """Check the document and validate every variant's job; raises `CompareConfigError`."""
        if not isinstance(data, dict):
            raise CompareConfigError("body", f"expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"seeds", "base", "variants"})
        if unknown:
            raise CompareConfigError(unknown[0], "unknown field (expected seeds, base, variants)")
        config = cls(_seeds(data.get("seeds")), _base(data.get("base", {})), _variants(data.get("variants")))
        specs = {name: config.job(name, config.seeds[0]) for name in config.variants}
        _check_shared(specs)
        return config

    @classmethod
    def load(cls, path: Path) -> CompareConfig:
        """Read and validate a JSON comparison file."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise CompareConfigError("body", f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(data)

    def document(self, variant: str, seed: int) -> dict[str, Any]:
        """The merged job document of one run."""
        return deep_merge(self.base, self.variants[variant]) | {"seed": seed}

    def job(self, variant: str, seed: int) -> JobSpec:
        """The validated job of one run."""
        try:
            return JobSpec.from_dict(self.document(variant, seed))
        except JobSpecError as err:
            raise CompareConfigError(err.field, err.message, variant) from None

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "base": self.base, "variants": self.variants}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` laid over it: objects merge recursively, any other value (lists, null) replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _seeds(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise CompareConfigError("seeds", f"expected a non-empty list of integers, got {value!r}")
    for i, seed in enumerate(value):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise CompareConfigError(f"seeds[{i}]", f"expected an integer in [0, {MAX_SEED}], got {seed!r}")
    if len(set(value)) != len(value):
        raise CompareConfigError("seeds", f"seeds must be distinct, got {value}")
    return tuple(value)


def _base(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CompareConfigError("base", f"expected a job document object, got {type(value).__name__}")
    if "seed" in value:
        raise CompareConfigError("base.seed", "set the seeds in the top-level 'seeds' list")
    return copy.deepcopy(value)


def _variants(value: object) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not value:
        raise CompareConfigError("variants", "expected a non-empty object of named job overrides")
    for name, override in value.items():
        if not VARIANT_NAME.match(name):
            raise CompareConfigError(
                "variants",
                f"name {name!r} must be 1-64 letters, digits, '_', '.', '+' or '-' (it names a directory)",
            )
        if not isinstance(override, dict):
            raise CompareConfigError("variants", f"expected an object, got {type(override).__name__}", name)
        if "seed" in override:
            raise CompareConfigError("seed", "set the seeds in the top-level 'seeds' list", name)
    return copy.deepcopy(value)


def _check_shared(specs: dict[str, JobSpec]) -> None:
    (first, reference), *others = specs.items()
    for name, spec in others:
        for path in SHARED_FIELDS:
            ours, theirs = _get(spec, path), _get(reference, path)
            if ours != theirs:
                raise CompareConfigError(
                    ".".join(path),
                    f"is {ours!r} here but {theirs!r} in variant {first!r}: every variant must be "
                    "evaluated on the same examples the same way",
                    name,
                )


def _get(spec: JobSpec, path: tuple[str, ...]) -> object:
    value: object = spec
    for part in path:
        value = getattr(value, part)
    return value
