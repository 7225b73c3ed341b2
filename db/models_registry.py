"""Fine-tuned models (registered adapters) of a tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Job, Model


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
