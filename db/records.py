"""What a job leaves behind as it runs: events, metric records, checkpoints and the final model.

The writers (`record_*`, `register_model`) are called by the worker; each is one transaction
and commits. The readers serve the API.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import Checkpoint, Job, JobEvent, JobMetric, Model
from db.pagination import Page, keyset_page

EventLevel = Literal["info", "warn", "error"]
EventType = Literal["message", "metrics"]


def fine_tuned_model_id(job: Job) -> str:
    """`ft:<base>:<suffix>:<job-id>`; the suffix segment is empty when the job has none (as OpenAI)."""
    return f"ft:{job.model}:{job.suffix or ''}:{job.id}"


def checkpoint_model_id(job: Job, step: int) -> str:
    return f"{fine_tuned_model_id(job)}:ckpt-step-{step}"


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: EventLevel = "info",
    type: EventType = "message",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add an event to the session without committing (transitions commit it with the state change)."""
    event = JobEvent(job_id=job_id, message=message, level=level, type=type, data=data)
    session.add(event)
    return event


def record_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: EventLevel = "info",
    type: EventType = "message",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Append an event to the job's log (ordered by an increasing sequence number)."""
    event = add_event(session, job_id, message, level=level, type=type, data=data)
    session.commit()
    return event


def record_metrics(session: Session, job_id: str, record: dict[str, Any]) -> JobMetric:
    """Store the trainer's metric record for `record["step"]`, and a `metrics` event with its scalars.

    A job resumed from a checkpoint logs steps again: the new record for step s replaces every
    stored record at or after s, so the series always describes the run that is going on.
    """
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"a metric record needs an integer 'step', got {step!r}")
    session.execute(delete(JobMetric).where(JobMetric.job_id == job_id, JobMetric.step >= step))
    row = JobMetric(job_id=job_id, step=step, record=_json_safe(record))
    session.add(row)
    scalars = {k: v for k, v in row.record.items() if isinstance(v, int | float) or v is None}
    add_event(session, job_id, f"Step {step}: training metrics", type="metrics", data=scalars)
    session.commit()
    return row


def record_checkpoint(
    session: Session, job_id: str, step: int, path: str, metrics: dict[str, Any] | None = None
) -> Checkpoint:
    """Register a checkpoint written (atomically) at `path`; a second one at the same step replaces it."""
    row = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if row is None:
        row = Checkpoint(job_id=job_id, step=step, path=path, metrics=_json_safe(metrics or {}))
        session.add(row)
    else:
        row.path, row.metrics, row.created_at = path, _json_safe(metrics or {}), utcnow()
    add_event(session, job_id, f"Checkpoint created at step {step}", data={"step": step})
    session.commit()
    return row


def register_model(session: Session, job_id: str, adapter_path: str) -> Model:
    """Register the job's final adapter as a model and set the job's `fine_tuned_model` (idempotent)."""
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    model_id = fine_tuned_model_id(job)
    model = session.get(Model, model_id)
    if model is None:
        model = Model(
            id=model_id, tenant_id=job.tenant_id, job_id=job.id, parent=job.model, adapter_path=adapter_path
        )
        session.add(model)
    else:
        model.adapter_path = adapter_path
    job.fine_tuned_model = model_id
    add_event(session, job_id, f"New fine-tuned model created: {model_id}", data={"model": model_id})
    session.commit()
    return model


def list_events(session: Session, job_id: str, *, after: JobEvent | None, limit: int) -> Page[JobEvent]:
    """Newest first; `after` is the last event of the previous page."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    cursor = (after.seq,) if after is not None else None
    return keyset_page(session, stmt, (JobEvent.seq,), cursor, limit)


def events_since(session: Session, job_id: str, after_seq: int, limit: int = 1000) -> list[JobEvent]:
    """Oldest first, for streaming: the events after sequence number `after_seq`."""
    stmt = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.seq > after_seq)
        .order_by(JobEvent.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def get_event(session: Session, job_id: str, event_id: str) -> JobEvent | None:
    return session.scalar(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id == event_id))


def list_checkpoints(
    session: Session, job_id: str, *, after: Checkpoint | None, limit: int
) -> Page[Checkpoint]:
    """Newest (highest step) first."""
    stmt = select(Checkpoint).where(Checkpoint.job_id == job_id)
    cursor = (after.step,) if after is not None else None
    return keyset_page(session, stmt, (Checkpoint.step,), cursor, limit)


def get_checkpoint(session: Session, job_id: str, checkpoint_id: str) -> Checkpoint | None:
    return session.scalar(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.id == checkpoint_id)
    )


def list_metrics(session: Session, job_id: str, after_step: int | None = None) -> list[JobMetric]:
    """The job's metric records in step order."""
    stmt = select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.step)
    if after_step is not None:
        stmt = stmt.where(JobMetric.step > after_step)
    return list(session.scalars(stmt))


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (a diverged loss) by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
