"""Fine-tuned models (registered adapters) of a tenant, and what an inference request runs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Checkpoint, Job, Model


def list_models(session: Session, tenant_id: str) -> list[tuple[Model, Job]]:
    """The tenant's fine-tuned models with their jobs, newest first."""
    rows = session.execute(
        select(Model, Job).join(Job, Job.id == Model.job_id).where(Model.tenant_id == tenant_id)
        .order_by(Model.created_at.desc(), Model.id.desc())
    )  # fmt: skip
    return [(model, job) for model, job in rows]


def get_model(session: Session, tenant_id: str, model_id: str) -> tuple[Model, Job] | None:
    row = session.execute(
        select(Model, Job)
        .join(Job, Job.id == Model.job_id)
        .where(Model.tenant_id == tenant_id, Model.id == model_id)
    ).first()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class ServedModel:
    """What an inference request runs: a base model, and the adapter of a fine-tuned model or checkpoint."""

    base_model: str
    adapter_id: str | None = None
    adapter_path: str | None = None


CHECKPOINT_MARK = ":ckpt-step-"


def resolve_served_model(
    session: Session, tenant_id: str, model_id: str, base_models: Collection[str]
) -> ServedModel | None:
    """A base model name, a fine-tuned model id, or a checkpoint (its id or its model id); None if the
    tenant has no such model (another tenant's model is None too)."""
    if model_id in base_models:
        return ServedModel(model_id)
    found = get_model(session, tenant_id, model_id)
    if found is not None:
        model, _ = found
        return ServedModel(model.parent, model.id, model.adapter_path)
    checkpoint = _checkpoint(session, tenant_id, model_id)
    if checkpoint is None:
        return None
    row, job = checkpoint
    return ServedModel(job.model, model_id, str(Path(row.path) / "adapter"))


def _checkpoint(session: Session, tenant_id: str, model_id: str) -> tuple[Checkpoint, Job] | None:
    stmt = select(Checkpoint, Job).join(Job, Job.id == Checkpoint.job_id).where(Job.tenant_id == tenant_id)
    if model_id.startswith("ftckpt-"):
        stmt = stmt.where(Checkpoint.id == model_id)
    elif CHECKPOINT_MARK in model_id:
        prefix, _, step = model_id.rpartition(CHECKPOINT_MARK)
        if not step.isdigit():
            return None
        stmt = stmt.where(Job.id == prefix.rpartition(":")[2], Checkpoint.step == int(step))
    else:
        return None
    row = session.execute(stmt).first()
    return None if row is None else (row[0], row[1])
