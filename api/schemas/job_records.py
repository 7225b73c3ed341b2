"""Events, checkpoints and metric series of a job."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict

from api.schemas.common import Identified, ListEnvelope, unix
from db.models import Checkpoint, Job, JobEvent, JobMetric
from db.records import checkpoint_model_id


class JobEventPublic(Identified):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: JobEvent) -> Self:
        return cls.model_validate(
            {
                "id": row.id,
                "created_at": unix(row.created_at),
                "level": row.level,
                "message": row.message,
                "type": row.type,
                "data": row.data,
            }
        )


class JobEventList(ListEnvelope[JobEventPublic]):
    pass


class CheckpointMetrics(BaseModel):
    """OpenAI's checkpoint metrics, plus whatever else the trainer recorded."""

    model_config = ConfigDict(extra="allow")

    step: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


class CheckpointPublic(Identified):
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int

    @classmethod
    def from_row(cls, row: Checkpoint, job: Job) -> Self:
        return cls(
            id=row.id,
            created_at=unix(row.created_at),
            fine_tuned_model_checkpoint=checkpoint_model_id(job, row.step),
            fine_tuning_job_id=job.id,
            metrics=CheckpointMetrics.model_validate({"step": row.step, **row.metrics}),
            step_number=row.step,
        )


class CheckpointList(ListEnvelope[CheckpointPublic]):
    pass


Scalar = float | None


class RoutingSeries(BaseModel):
    """One MoE layer's routing statistics, one entry per logged step."""

    model_config = ConfigDict(extra="allow")

    expert_load: list[list[float] | None]
    router_entropy: list[Scalar]
    gate_entropy: list[Scalar]
    dead_experts: list[Scalar]
    tokens: list[Scalar]


class MetricSeries(BaseModel):
    """Step-aligned series: entry i belongs to `steps[i]`; None where that step did not log the value."""

    model_config = ConfigDict(extra="allow")

    epoch: list[Scalar]
    train_loss: list[Scalar]
    learning_rate: list[Scalar]
    grad_norm: list[Scalar]
    tokens_seen: list[Scalar]
    valid_loss: list[Scalar]
    valid_mean_token_accuracy: list[Scalar]
    valid_exact_match: list[Scalar]
    routing: dict[str, RoutingSeries]
    preconditioner: dict[str, Any]


class JobMetrics(BaseModel):
    object: Literal["fine_tuning.job.metrics"] = "fine_tuning.job.metrics"
    job_id: str
    steps: list[int]
    series: MetricSeries

    @classmethod
    def from_rows(cls, job_id: str, rows: list[JobMetric]) -> Self:
        return cls(job_id=job_id, steps=[row.step for row in rows], series=build_series(rows))


_NESTED = ("routing", "preconditioner")
_ROUTING_KEYS = ("expert_load", "router_entropy", "gate_entropy", "dead_experts", "tokens")
_SCALAR_KEYS = tuple(k for k in MetricSeries.model_fields if k not in _NESTED)


def build_series(rows: list[JobMetric]) -> MetricSeries:
    """Turn per-step records into per-metric series aligned with the steps."""
    records = [row.record for row in rows]
    series: dict[str, Any] = {key: [r.get(key) for r in records] for key in _SCALAR_KEYS}
    extra_scalars = {
        key
        for r in records
        for key, value in r.items()
        if key not in series and key not in _NESTED and key != "step" and isinstance(value, int | float)
    }
    for key in sorted(extra_scalars):
        series[key] = [r.get(key) for r in records]
    layers = sorted({layer for r in records for layer in (r.get("routing") or {})})
    series["routing"] = {
        layer: _columns([(r.get("routing") or {}).get(layer) or {} for r in records], _ROUTING_KEYS)
        for layer in layers
    }
    series["preconditioner"] = _nested_columns([r.get("preconditioner") or {} for r in records])
    return MetricSeries.model_validate(series)


def _columns(dicts: list[dict[str, Any]], required: tuple[str, ...]) -> dict[str, list[Any]]:
    keys = list(required) + sorted({k for d in dicts for k in d} - set(required))
    return {key: [d.get(key) for d in dicts] for key in keys}


def _nested_columns(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns of a record tree: nested dicts stay nested, leaves become step-aligned lists."""
    keys = sorted({k for d in dicts for k in d})
    out: dict[str, Any] = {}
    for key in keys:
        values = [d.get(key) for d in dicts]
        if any(isinstance(v, dict) for v in values):
            out[key] = _nested_columns([v if isinstance(v, dict) else {} for v in values])
        else:
            out[key] = values
    return out
