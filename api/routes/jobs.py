from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

import db.jobs
import db.records
from api.deps import CurrentTenant, PageAfter, PageLimit, QueueDep, SessionDep, SettingsDep, StorageDep
from api.errors import not_found
from api.schemas.job_records import (
    CheckpointList,
    CheckpointPublic,
    JobEventList,
    JobEventPublic,
    JobMetrics,
)
from api.schemas.jobs import JobCreate, JobList, JobPublic
from api.services import jobs as job_service
from api.services.events import follow_events
from db.models import Job, Tenant

router = APIRouter(prefix="/fine_tuning/jobs", tags=["jobs"])

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}
}


def _tenant_job(session: Session, tenant: Tenant, job_id: str, param: str | None = None) -> Job:
    job = db.jobs.get_job(session, job_id, tenant.id)
    if job is None:
        raise not_found("fine-tuning job", job_id, param)
    return job


@router.post("")
def create_job(
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    storage: StorageDep,
    queue: QueueDep,
    body: JobCreate,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobPublic:
    """Create a job; it is `queued` when its files are valid, else `failed` with the problems by line."""
    job = job_service.create_job(
        session,
        tenant,
        body,
        settings=settings,
        storage=storage,
        queue=queue,
        idempotency_key=idempotency_key,
    )
    return JobPublic.from_row(job)


@router.get("")
def list_jobs(
    session: SessionDep, tenant: CurrentTenant, after: PageAfter = None, limit: PageLimit = 20
) -> JobList:
    """The tenant's jobs, newest first."""
    cursor = _tenant_job(session, tenant, after, "after") if after is not None else None
    page = db.jobs.list_jobs(session, tenant.id, after=cursor, limit=limit)
    return JobList.page([JobPublic.from_row(job) for job in page.items], page.has_more)


@router.get("/{job_id}")
def read_job(session: SessionDep, tenant: CurrentTenant, job_id: str) -> JobPublic:
    return JobPublic.from_row(_tenant_job(session, tenant, job_id))


@router.post("/{job_id}/cancel")
def cancel_job(session: SessionDep, tenant: CurrentTenant, queue: QueueDep, job_id: str) -> JobPublic:
    """Cancel a job: at once if it has not started, else it stops at its next step (`cancel_requested`)."""
    job = _tenant_job(session, tenant, job_id)
    return JobPublic.from_row(job_service.cancel_job(session, job, queue))


@router.get("/{job_id}/events", response_model=JobEventList, responses=_SSE_RESPONSE)
def list_job_events(
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    job_id: str,
    after: PageAfter = None,
    limit: PageLimit = 20,
    stream: Annotated[bool, Query(description="Follow new events as server-sent events")] = False,
    last_event_id: Annotated[str | None, Header(description="Where a reconnecting stream resumes")] = None,
) -> JobEventList | StreamingResponse:
    """Events newest first; with `stream=true`, events after `after` oldest first until the job ends."""
    job = _tenant_job(session, tenant, job_id)
    if stream and after is None:
        after = last_event_id
    cursor = None
    if after is not None:
        cursor = db.records.get_event(session, job.id, after)
        if cursor is None:
            raise not_found("event", after, "after")
    if stream:
        session.close()  # give the connection back: the stream polls with short sessions of its own
        frames = follow_events(
            request,
            request.app.state.session_factory,
            job.id,
            cursor.seq if cursor is not None else 0,
            settings.events_poll_seconds,
        )
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(frames, media_type="text/event-stream", headers=headers)
    page = db.records.list_events(session, job.id, after=cursor, limit=limit)
    return JobEventList.page([JobEventPublic.from_row(event) for event in page.items], page.has_more)


@router.get("/{job_id}/checkpoints")
def list_job_checkpoints(
    session: SessionDep, tenant: CurrentTenant, job_id: str, after: PageAfter = None, limit: PageLimit = 10
) -> CheckpointList:
    """Checkpoints, the latest step first; each is servable by its `fine_tuned_model_checkpoint` id."""
    job = _tenant_job(session, tenant, job_id)
    cursor = None
    if after is not None:
        cursor = db.records.get_checkpoint(session, job.id, after)
        if cursor is None:
            raise not_found("checkpoint", after, "after")
    page = db.records.list_checkpoints(session, job.id, after=cursor, limit=limit)
    return CheckpointList.page([CheckpointPublic.from_row(row, job) for row in page.items], page.has_more)


@router.get("/{job_id}/metrics")
def read_job_metrics(
    session: SessionDep,
    tenant: CurrentTenant,
    job_id: str,
    after_step: Annotated[int | None, Query(ge=0, description="Only steps after this one")] = None,
) -> JobMetrics:
    """Step-aligned series: losses, learning rate, per-layer routing statistics, preconditioner stats."""
    job = _tenant_job(session, tenant, job_id)
    return JobMetrics.from_rows(job.id, db.records.list_metrics(session, job.id, after_step))
