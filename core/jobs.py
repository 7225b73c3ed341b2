"""The job document: one typed hyperparameter document drives a run, in the CLI and the API.

    {"model": "smollm2-135m-instruct", "seed": 42,
     "hyperparameters": {...}, "adapter": {...}, "optimizer": {...}}

`JobSpec.from_dict` validates everything before any work and raises `JobSpecError` whose
`field` is the dotted path of the offending value (`hyperparameters.batch_size`); every
default is resolved, and `to_dict()` records the resolved document with the run.
"""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from core.config import GATE_STRATEGIES, MoELoRAConfig, gate_strategy_name, resolve_gate_grad_exponent


class JobSpecError(ValueError):
    """An invalid job document; `field` is the dotted path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Hyperparameters:
    """Training-loop settings."""

    n_epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides n_epochs when set
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.0  # the schedule decays to learning_rate * min_lr_ratio (the paper: 0.1)
    max_seq_length: int = 512
    truncation: Literal["error", "drop"] = "error"  # over-long examples: reject the file, or skip them
    eval_every: int = 50
    checkpoint_every: int = 50
    log_every: int = 1
    gradient_checkpointing: bool = False
    eval_max_examples: int | None = 200  # exact-match generation is slow: evaluate on at most this many
    eval_max_new_tokens: int = 16

    def validate(self) -> None:
        _positive(
            self, "n_epochs", "max_steps", "batch_size", "gradient_accumulation_steps", "max_seq_length"
        )
        _positive(
            self, "eval_every", "checkpoint_every", "log_every", "eval_max_examples", "eval_max_new_tokens"
        )
        _in_range(self, "learning_rate", 0.0, None, low_open=True)
        _in_range(self, "warmup_ratio", 0.0, 1.0, high_open=True)
        _in_range(self, "min_lr_ratio", 0.0, 1.0)


@dataclass
class AdapterSpec:
    """The adapter's shape; see `core.config.MoELoRAConfig`."""

    type: Literal["moe_lora", "lora"] = "moe_lora"
    num_experts: int | None = None
    top_k: int | None = None
    rank: int = 4
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    router_normalization: Literal["topk", "dense"] = "topk"
    load_balancing_coef: float = 0.0
    z_loss_coef: float = 0.0


@dataclass
class OptimizerSpec:
    """The optimizer, the preconditioner and the gate strategy."""

    type: Literal["sgd", "adamw"] = "sgd"
    preconditioner: Literal["none", "riemannian"] = "riemannian"
    gate_strategy: str | None = None  # classic | gate_rescaled | gate_rescaled_exact
    gate_grad_exponent: float | None = None  # or an explicit exponent p in [0, 1]
    damping: float = 1e-6
    router_learning_rate: float | None = 1e-5  # None: the expert learning rate
    router_max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    bias_correction: bool = True

    def validate(self) -> None:
        try:
            p = resolve_gate_grad_exponent(self.gate_strategy, self.gate_grad_exponent)
        except ValueError as err:
            name, _, message = str(err).partition(": ")
            raise JobSpecError(name, message) from None
        if not 0.0 <= p <= 1.0:
            raise JobSpecError("gate_grad_exponent", f"must be in [0, 1], got {p}")
        self.gate_grad_exponent = p
        self.gate_strategy = gate_strategy_name(p)
        _in_range(self, "damping", 0.0, None)
        _in_range(self, "router_learning_rate", 0.0, None)
        _in_range(self, "router_max_grad_norm", 0.0, None, low_open=True)
        _in_range(self, "weight_decay", 0.0, None)
        _in_range(self, "momentum", 0.0, 1.0, high_open=True)
        _in_range(self, "eps", 0.0, None, low_open=True)
        for i, beta in enumerate(self.betas):
            if not 0.0 <= beta < 1.0:
                raise JobSpecError(f"betas[{i}]", f"must be in [0, 1), got {beta}")


@dataclass
class JobSpec:
    """A whole run: base model, seed, loop, adapter and optimizer."""

    model: str = "smollm2-135m-instruct"
    seed: int = 42
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    adapter: AdapterSpec = field(default_factory=AdapterSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Build and validate; raises `JobSpecError` naming the field."""
        spec = _build(cls, data, "")
        spec._validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["optimizer"]["betas"] = list(self.optimizer.betas)
        return out

    def _validate(self) -> None:
        if not self.model.strip():
            raise JobSpecError("model", "must not be empty")
        for prefix, part in (("hyperparameters", self.hyperparameters), ("optimizer", self.optimizer)):
            try:
                part.validate()
            except JobSpecError as err:
                raise JobSpecError(f"{prefix}.{err.field}", err.message) from None
        try:
            config = self.adapter_config()
        except ValueError as err:
            name, _, message = str(err).partition(": ")
            raise JobSpecError(f"adapter.{name.replace('adapter_type', 'type')}", message) from None
        self.adapter.num_experts, self.adapter.top_k = config.num_experts, config.top_k

    def adapter_config(self) -> MoELoRAConfig:
        """The core's adapter config (the gate exponent comes from the optimizer block)."""
        a = self.adapter
        p = self.optimizer.gate_grad_exponent
        return MoELoRAConfig(
            adapter_type=a.type,
            num_experts=a.num_experts,
            top_k=a.top_k,
            rank=a.rank,
            alpha=a.alpha,
            dropout=a.dropout,
            target_modules=list(a.target_modules),
            gate_grad_exponent=GATE_STRATEGIES["gate_rescaled"] if p is None else p,
            router_normalization=a.router_normalization,
            load_balancing_coef=a.load_balancing_coef,
            z_loss_coef=a.z_loss_coef,
        )


def _build(cls: type, data: object, path: str) -> Any:
    """Instantiate dataclass `cls` from `data`, type-checking every field."""
    if not isinstance(data, dict):
        raise JobSpecError(path or "body", f"expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise JobSpecError(f"{path}{key}", "unknown field")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], f"{path}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{path}.")  # type: ignore[arg-type]  # tp is a dataclass type here
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise JobSpecError(path, "must not be null")
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(inner, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(repr(a) for a in get_args(tp))
            raise JobSpecError(path, f"expected one of {allowed}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise JobSpecError(path, f"expected a list, got {type(value).__name__}")
        (inner,) = get_args(tp)
        return [_coerce(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise JobSpecError(path, f"expected a list of {len(args)} numbers")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise JobSpecError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JobSpecError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise JobSpecError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise JobSpecError(path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported field type {tp!r}")  # a bug in this module, not in the input


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < 1:
            raise JobSpecError(name, f"must be >= 1, got {value}")


def _in_range(
    obj: object,
    name: str,
    low: float | None,
    high: float | None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    value = getattr(obj, name)
    if value is None:
        return
    if low is not None and (value < low or (low_open and value == low)):
        raise JobSpecError(name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise JobSpecError(name, f"must be {'<' if high_open else '<='} {high}, got {value}")
