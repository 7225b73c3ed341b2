"""The job state machine. Every transition is one conditional UPDATE, so concurrent callers (API
replicas, workers, the reaper) cannot both win; each function is one transaction and commits,
recording an event with the state change.

    function                 from                          to
    create_job               -                             validating_files
    mark_files_validated     validating_files              queued (then the task is enqueued)
    claim_job                queued                        running, leased to the worker, attempts + 1
    renew_lease              running (own lease)           running, lease extended
    update_progress          running (own lease)           running, progress fields set
    request_cancel           validating_files, queued      cancelled
                             running                       running with cancel_requested (the worker
                                                           stops at its next step: finish_job(cancelled))
    requeue_expired_leases   running, lease expired        queued (resumes from its last checkpoint),
                                                           or failed (worker_lost) after max_attempts,
                                                           or cancelled if a cancel was requested
    finish_job               running (own lease)           succeeded, failed, cancelled
                             validating_files, queued      failed, cancelled

A running job is owned by the worker holding its lease (`lease_owner`, `lease_expires_at`);
the worker renews it (`renew_lease`) well within `lease_seconds`, and the calls that change a
running job take its `worker_id`, so a worker that lost its lease cannot overwrite the job.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import TERMINAL_STATUSES, IdempotencyKey, Job, JobStatus
from db.pagination import Page, keyset_page
from db.records import add_event


class JobErrorInfo(TypedDict):
    code: str
    message: str
    param: str | None


class JobStateError(Exception):
    """The job's current state does not allow the transition (or the caller lost the lease)."""

    def __init__(self, job_id: str, status: str, message: str) -> None:
        super().__init__(f"{job_id} is {status}: {message}")
        self.job_id = job_id
        self.status = status


@dataclass(frozen=True)
class Lease:
    """What a heartbeat learns: whether the worker still holds the job, and whether to stop."""

    held: bool
    cancel_requested: bool


_FINISH_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING}),
}


def create_job(
    session: Session,
    *,
    tenant_id: str,
    spec: dict[str, Any],
    training_file_id: str,
    validation_file_id: str | None = None,
    suffix: str | None = None,
    metadata: dict[str, str] | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Job:
    """Insert a job in `validating_files` from a resolved spec (`JobSpec.to_dict()`).

    `idempotency` is `(key, request_hash)`, stored in the same transaction; a concurrent request
    with the same key makes this raise `IntegrityError` (the caller re-reads the winner).
    """
    job = Job(
        tenant_id=tenant_id,
        status=JobStatus.VALIDATING_FILES,
        model=spec["model"],
        seed=spec["seed"],
        spec=spec,
        training_file_id=training_file_id,
        validation_file_id=validation_file_id,
        suffix=suffix,
        metadata_=metadata,
    )
    session.add(job)
    session.flush()
    if idempotency is not None:
        key, request_hash = idempotency
        session.add(IdempotencyKey(tenant_id=tenant_id, key=key, request_hash=request_hash, job_id=job.id))
    add_event(session, job.id, f"Created fine-tuning job: {job.id}")
    add_event(session, job.id, f"Validating training file: {training_file_id}")
    session.commit()
    return job


def mark_files_validated(session: Session, job_id: str) -> Job:
    """validating_files -> queued (the caller then enqueues the training task)."""
    job = _transition(
        session,
        job_id,
        {JobStatus.VALIDATING_FILES},
        "only a job validating its files can be queued",
        status=JobStatus.QUEUED,
    )
    add_event(session, job_id, "Files validated, job queued")
    session.commit()
    return job


def request_cancel(session: Session, job_id: str, now: datetime | None = None) -> Job:
    """Cancel a job: before it runs, at once (-> cancelled); while running, set `cancel_requested`.

    A worker that claims the job afterwards finds it cancelled, so revoking the Celery message is
    an optimisation, not what makes cancel safe. Raises `JobStateError` for a finished job.
    """
    now = now or utcnow()
    waiting = {JobStatus.VALIDATING_FILES, JobStatus.QUEUED}
    job = _update(
        session, job_id, waiting, status=JobStatus.CANCELLED, finished_at=now, cancel_requested=True
    )
    if job is not None:
        add_event(session, job_id, "Job cancelled")
        session.commit()
        return job
    job = _update(session, job_id, {JobStatus.RUNNING}, cancel_requested=True)
    if job is not None:
        add_event(session, job_id, "Cancellation requested; the job stops at its next step")
        session.commit()
        return job
    current = _get(session, job_id)
    raise JobStateError(job_id, current.status, "a finished job cannot be cancelled")


def claim_job(
    session: Session, job_id: str, worker_id: str, lease_seconds: float, now: datetime | None = None
) -> Job | None:
    """queued -> running under a lease for `worker_id`; None if the job is not queued (any more).

    The worker calls this first thing in the task; None means another worker has it, or it was
    cancelled or finished: acknowledge the message and do nothing.
    """
    now = now or utcnow()
    job = _update(
        session,
        job_id,
        {JobStatus.QUEUED},
        status=JobStatus.RUNNING,
        lease_owner=worker_id,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        attempts=Job.attempts + 1,
        started_at=func.coalesce(Job.started_at, now),
        extra=(Job.cancel_requested.is_(False),),
    )
    if job is None:
        session.rollback()
        return None
    add_event(session, job_id, f"Fine-tuning job started on {worker_id} (attempt {job.attempts})")
    session.commit()
    return job


def renew_lease(
    session: Session, job_id: str, worker_id: str, lease_seconds: float, now: datetime | None = None
) -> Lease:
    """Extend the lease of a running job; `held=False` tells the worker to stop without writing more."""
    now = now or utcnow()
    job = _update(
        session,
        job_id,
        {JobStatus.RUNNING},
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        extra=(Job.lease_owner == worker_id,),
    )
    session.commit()
    if job is None:
        return Lease(held=False, cancel_requested=False)
    return Lease(held=True, cancel_requested=job.cancel_requested)


def is_cancel_requested(session: Session, job_id: str) -> bool:
    """The per-step check of the training loop (one indexed read)."""
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def update_progress(
    session: Session,
    job_id: str,
    worker_id: str,
    *,
    step: int,
    total_steps: int | None = None,
    epoch: float | None = None,
    eta_seconds: float | None = None,
    trained_tokens: int | None = None,
) -> bool:
    """Set the progress of a running job (fields left None keep their value); False without the lease."""
    given = {
        "total_steps": total_steps,
        "epoch": epoch,
        "eta_seconds": eta_seconds,
        "trained_tokens": trained_tokens,
    }
    values: dict[str, Any] = {"step": step} | {k: v for k, v in given.items() if v is not None}
    job = _update(session, job_id, {JobStatus.RUNNING}, extra=(Job.lease_owner == worker_id,), **values)
    session.commit()
    return job is not None


def requeue_expired_leases(session: Session, now: datetime | None = None, max_attempts: int = 3) -> list[str]:
    """The reaper's sweep over running jobs whose lease expired (their worker died or hung).

    - cancel requested -> cancelled (nobody is left to wind it down);
    - `attempts >= max_attempts` -> failed with code `worker_lost`;
    - otherwise -> queued, lease cleared; the returned ids must be enqueued again, and the next
      worker resumes from the last checkpoint.
    """
    now = now or utcnow()
    expired = (Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    lease_cleared = {"lease_owner": None, "lease_expires_at": None}
    cancelled = session.scalars(
        update(Job)
        .where(*expired, Job.cancel_requested.is_(True))
        .values(status=JobStatus.CANCELLED, finished_at=now, **lease_cleared)
        .returning(Job.id)
    ).all()
    error = JobErrorInfo(
        code="worker_lost", message=f"the worker stopped responding {max_attempts} times", param=None
    )
    failed = session.scalars(
        update(Job)
        .where(*expired, Job.attempts >= max_attempts)
        .values(status=JobStatus.FAILED, finished_at=now, error=error, **lease_cleared)
        .returning(Job.id)
    ).all()
    requeued = session.scalars(
        update(Job).where(*expired).values(status=JobStatus.QUEUED, **lease_cleared).returning(Job.id)
    ).all()
    for job_id in cancelled:
        add_event(session, job_id, "Job cancelled (its worker stopped responding)")
    for job_id in failed:
        add_event(session, job_id, f"Job failed: {error['message']}", level="error")
    for job_id in requeued:
        add_event(session, job_id, "Worker lease expired; job re-queued", level="warn")
    session.commit()
    return list(requeued)


def finish_job(
    session: Session,
    job_id: str,
    status: JobStatus,
    *,
    error: JobErrorInfo | None = None,
    worker_id: str | None = None,
    trained_tokens: int | None = None,
    now: datetime | None = None,
) -> Job:
    """Move a job to a terminal state (succeeded only from running; failed/cancelled from any live state).

    With `worker_id`, the job must be running under that worker's lease. Raises `JobStateError`
    when the transition is not allowed (already finished, or the lease was lost).
    """
    status = JobStatus(status)
    if not status.terminal:
        raise ValueError(f"{status} is not a terminal status")
    if (status == JobStatus.FAILED) != (error is not None):
        raise ValueError("a failed job needs an error, and only a failed job has one")
    now = now or utcnow()
    values: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
    values.update(lease_owner=None, lease_expires_at=None, eta_seconds=None)
    if trained_tokens is not None:
        values["trained_tokens"] = trained_tokens
    extra = (Job.lease_owner == worker_id,) if worker_id is not None else ()
    job = _update(session, job_id, _FINISH_FROM[status], extra=extra, **values)
    if job is None:
        session.rollback()
        current = _get(session, job_id)
        raise JobStateError(job_id, current.status, f"cannot become {status}")
    if error is not None:
        add_event(session, job_id, f"Job failed: {error['message']}", level="error", data=dict(error))
    else:
        add_event(session, job_id, f"Job {status}")
    session.commit()
    return job


def get_job(session: Session, job_id: str, tenant_id: str | None = None) -> Job | None:
    """The job, or None; with `tenant_id`, None for other tenants' jobs too."""
    stmt = select(Job).where(Job.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    return session.scalar(stmt)


def list_jobs(session: Session, tenant_id: str, *, after: Job | None, limit: int) -> Page[Job]:
    """The tenant's jobs, newest first; `after` is the last job of the previous page."""
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    cursor = (after.created_at, after.id) if after is not None else None
    return keyset_page(session, stmt, (Job.created_at, Job.id), cursor, limit)


def get_idempotency_key(session: Session, tenant_id: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (tenant_id, key))


def count_jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows}


def _get(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


def _update(
    session: Session,
    job_id: str,
    allowed: Collection[JobStatus],
    *,
    extra: tuple[Any, ...] = (),
    **values: Any,
) -> Job | None:
    """UPDATE the job if its status is in `allowed` (and `extra` holds); the updated row, or None."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(list(allowed)), *extra)
        .values(**values)
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one_or_none()


def _transition(
    session: Session, job_id: str, allowed: Collection[JobStatus], message: str, **values: Any
) -> Job:
    job = _update(session, job_id, allowed, **values)
    if job is None:
        session.rollback()
        current = _get(session, job_id)
        raise JobStateError(job_id, current.status, message)
    return job


__all__ = [
    "TERMINAL_STATUSES",
    "JobErrorInfo",
    "JobStateError",
    "JobStatus",
    "Lease",
    "claim_job",
    "count_jobs_by_status",
    "create_job",
    "finish_job",
    "get_idempotency_key",
    "get_job",
    "is_cancel_requested",
    "list_jobs",
    "mark_files_validated",
    "renew_lease",
    "request_cancel",
    "requeue_expired_leases",
    "update_progress",
]
