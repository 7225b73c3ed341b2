"""The job state machine, as the worker and the reaper drive it (both backends)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from db.files import create_file
from db.jobs import (
    JobErrorInfo,
    JobStateError,
    claim_job,
    create_job,
    finish_job,
    get_job,
    is_cancel_requested,
    mark_files_validated,
    renew_lease,
    request_cancel,
    requeue_expired_leases,
    update_progress,
)
from db.models import Job, JobStatus
from db.records import register_model
from db.tenants import get_or_create_tenant
from tests.api.conftest import BASE_MODEL, Backend

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = 60.0


def queued_job(session: Session) -> Job:
    tenant = get_or_create_tenant(session, f"tenant-{uuid.uuid4().hex[:10]}")
    file = create_file(
        session,
        file_id=f"file-{uuid.uuid4().hex[:20]}",
        tenant_id=tenant.id,
        filename="t.jsonl",
        size=1,
        sha256="0" * 64,
        purpose="fine-tune",
        storage_path="files/x",
    )
    spec = {"model": BASE_MODEL, "seed": 1, "hyperparameters": {}, "adapter": {}, "optimizer": {}}
    job = create_job(session, tenant_id=tenant.id, spec=spec, training_file_id=file.id, suffix="s")
    return mark_files_validated(session, job.id)


@pytest.fixture
def job(session: Session) -> Job:
    return queued_job(session)


def test_claim_job_takes_a_queued_job_under_a_lease(session: Session, job: Job) -> None:
    claimed = claim_job(session, job.id, "w1", LEASE, now=T0)

    assert claimed is not None
    assert claimed.status == JobStatus.RUNNING and claimed.lease_owner == "w1"
    assert claimed.lease_expires_at == T0 + timedelta(seconds=LEASE)
    assert claimed.attempts == 1 and claimed.started_at == T0


def test_claim_job_succeeds_for_exactly_one_of_concurrent_workers(
    backend: Backend, session: Session, job: Job
) -> None:
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def claim(worker: str) -> None:
        with backend.session_factory() as own:
            barrier.wait()
            if claim_job(own, job.id, worker, LEASE) is not None:
                winners.append(worker)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1
    assert get_job(session, job.id) is not None
    session.expire_all()
    assert session.get(Job, job.id).lease_owner == winners[0]  # type: ignore[union-attr]


def test_claim_job_refuses_a_running_or_cancelled_job(session: Session, job: Job) -> None:
    claim_job(session, job.id, "w1", LEASE)

    assert claim_job(session, job.id, "w2", LEASE) is None
    other = queued_job(session)
    request_cancel(session, other.id)
    assert claim_job(session, other.id, "w2", LEASE) is None


def test_renew_lease_extends_it_only_for_its_owner(session: Session, job: Job) -> None:
    claim_job(session, job.id, "w1", LEASE, now=T0)

    held = renew_lease(session, job.id, "w1", LEASE, now=T0 + timedelta(seconds=30))
    stolen = renew_lease(session, job.id, "w2", LEASE, now=T0 + timedelta(seconds=30))

    assert held.held and not held.cancel_requested
    assert not stolen.held
    assert session.get(Job, job.id).lease_expires_at == T0 + timedelta(seconds=90)  # type: ignore[union-attr]


def test_renew_lease_reports_a_cancel_request(session: Session, job: Job) -> None:
    claim_job(session, job.id, "w1", LEASE)
    cancelled = request_cancel(session, job.id)

    lease = renew_lease(session, job.id, "w1", LEASE)

    assert cancelled.status == JobStatus.RUNNING and cancelled.public_status == "cancel_requested"
    assert lease.held and lease.cancel_requested
    assert is_cancel_requested(session, job.id)


def test_requeue_expired_leases_requeues_fails_or_cancels(session: Session) -> None:
    live, expired, exhausted, cancelling = (queued_job(session) for _ in range(4))
    for _ in range(2):  # two earlier attempts that also lost their lease
        claim_job(session, exhausted.id, "w", LEASE, now=T0)
        assert exhausted.id in requeue_expired_leases(session, now=T0 + timedelta(seconds=LEASE + 1))
    claim_job(session, exhausted.id, "w", LEASE, now=T0)
    claim_job(session, live.id, "w", LEASE, now=T0 + timedelta(seconds=100))
    claim_job(session, expired.id, "w", LEASE, now=T0)
    claim_job(session, cancelling.id, "w", LEASE, now=T0)
    request_cancel(session, cancelling.id)

    requeued = requeue_expired_leases(session, now=T0 + timedelta(seconds=LEASE + 1), max_attempts=3)

    # The sweep is global: other tests' running jobs may be requeued too; ours are decided here.
    assert expired.id in requeued and not {live.id, exhausted.id, cancelling.id} & set(requeued)
    states = {
        j.id: session.get(Job, j.id, populate_existing=True) for j in (live, expired, exhausted, cancelling)
    }
    assert states[live.id].status == JobStatus.RUNNING  # type: ignore[union-attr]
    assert states[expired.id].status == JobStatus.QUEUED and states[expired.id].lease_owner is None  # type: ignore[union-attr]
    assert states[exhausted.id].status == JobStatus.FAILED  # type: ignore[union-attr]
    assert states[exhausted.id].error["code"] == "worker_lost"  # type: ignore[union-attr,index]
    assert states[cancelling.id].status == JobStatus.CANCELLED  # type: ignore[union-attr]
    assert claim_job(session, expired.id, "w2", LEASE) is not None  # a new worker resumes it


def test_a_worker_that_lost_its_lease_cannot_finish_or_report(session: Session, job: Job) -> None:
    claim_job(session, job.id, "w1", LEASE, now=T0)
    requeue_expired_leases(session, now=T0 + timedelta(seconds=LEASE + 1))
    claim_job(session, job.id, "w2", LEASE)

    with pytest.raises(JobStateError):
        finish_job(session, job.id, JobStatus.SUCCEEDED, worker_id="w1")
    assert not update_progress(session, job.id, "w1", step=3)
    assert not renew_lease(session, job.id, "w1", LEASE).held
    assert finish_job(session, job.id, JobStatus.SUCCEEDED, worker_id="w2").status == JobStatus.SUCCEEDED


def test_finish_job_records_the_error_of_a_failed_job(session: Session, job: Job) -> None:
    claim_job(session, job.id, "w1", LEASE)
    error = JobErrorInfo(code="out_of_memory", message="CUDA out of memory", param=None)

    failed = finish_job(session, job.id, JobStatus.FAILED, error=error, worker_id="w1")

    assert failed.status == JobStatus.FAILED and failed.error == error
    assert failed.finished_at is not None and failed.lease_owner is None


def test_finish_job_checks_its_arguments_and_state(session: Session, job: Job) -> None:
    with pytest.raises(ValueError, match="terminal"):
        finish_job(session, job.id, JobStatus.RUNNING)
    with pytest.raises(ValueError, match="error"):
        finish_job(session, job.id, JobStatus.FAILED)
    with pytest.raises(JobStateError):
        finish_job(session, job.id, JobStatus.SUCCEEDED)  # never ran


def test_request_cancel_of_a_finished_job_raises(session: Session, job: Job) -> None:
    request_cancel(session, job.id)

    with pytest.raises(JobStateError) as err:
        request_cancel(session, job.id)
    assert err.value.status == JobStatus.CANCELLED


def test_register_model_is_idempotent_and_names_the_model(session: Session, job: Job) -> None:
    first = register_model(session, job.id, "a/adapter")
    again = register_model(session, job.id, "b/adapter")

    assert first.id == again.id == f"ft:{BASE_MODEL}:s:{job.id}"
    assert again.adapter_path == "b/adapter" and again.parent == BASE_MODEL
    assert session.get(Job, job.id).fine_tuned_model == first.id  # type: ignore[union-attr]


def test_times_come_back_timezone_aware_in_utc(backend: Backend, job: Job) -> None:
    with backend.session_factory() as fresh:
        loaded = fresh.get(Job, job.id)

    assert loaded is not None and loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == timedelta(0)
