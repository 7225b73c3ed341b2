"""The training task: claim the job, train under a lease, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from api.settings import Settings
from core.jobs import JobSpec
from core.trainer import Progress, TrainingFailure, train
from db.jobs import JobErrorInfo, JobStateError, JobStatus, claim_job, finish_job, update_progress
from db.models import File, Job
from db.records import register_model
from db.session import session_scope
from worker.celery_app import TRAIN_TASK, app, settings_of
from worker.lease import Heartbeat, LeaseLost
from worker.resources import session_factory
from worker.sink import DatabaseSink

logger = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_dir(settings: Settings, job_id: str) -> Path:
    return Path(settings.storage_dir).resolve() / "jobs" / job_id  # absolute: stored in the models table


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_job(job_id: str) -> str:
    """Run the job if it is queued; returns its final status (or why it was not run)."""
    return run_job(job_id, settings_of(app))


def run_job(job_id: str, settings: Settings) -> str:
    factory = session_factory(settings)
    me = worker_id()
    with session_scope(factory) as session:
        job = claim_job(session, job_id, me, settings.lease_seconds)
        if job is None:
            return "not claimed"  # cancelled, finished, or running elsewhere: nothing to do
        spec_doc, files = job.spec, _file_paths(session, job, settings)
    interval = min(settings.heartbeat_seconds, settings.lease_seconds / 3)
    with Heartbeat(factory, job_id, me, settings.lease_seconds, interval) as heartbeat:
        return _train(job_id, me, spec_doc, files, settings, heartbeat)


def _train(
    job_id: str,
    me: str,
    spec_doc: dict[str, Any],
    files: dict[str, Path | None],
    settings: Settings,
    heartbeat: Heartbeat,
) -> str:
    factory = session_factory(settings)

    def progress(p: Progress) -> None:
        if heartbeat.lost:
            raise LeaseLost(job_id)
        with session_scope(factory) as session:
            update_progress(session, job_id, me, step=p.step, total_steps=p.total_steps, epoch=p.epoch,
                            eta_seconds=p.eta_seconds)  # fmt: skip

    try:
        result = train(
            JobSpec.from_dict(spec_doc),
            files["training_file"],  # type: ignore[arg-type]  # always set for a claimed job
            job_dir(settings, job_id),
            valid_file=files["validation_file"],
            sink=DatabaseSink(factory, job_id),
            should_stop=lambda: heartbeat.cancel_requested,
            progress=progress,
            resume=True,
            cache_dir=settings.model_cache_dir,
        )
    except TrainingFailure as failure:
        if heartbeat.lost or isinstance(failure.__cause__, LeaseLost):
            logger.warning("lost the lease of %s; another worker resumes it", job_id)
            return "lease lost"
        param = "training_file" if failure.kind == "bad_data" else None
        return _finish(factory, job_id, me, JobStatus.FAILED, error={"code": failure.kind, "message": failure.message,
                                                                      "param": param})  # fmt: skip
    if result.status == "stopped":
        return _finish(factory, job_id, me, JobStatus.CANCELLED, trained_tokens=result.tokens_seen)
    with session_scope(factory) as session:
        register_model(session, job_id, str(result.adapter_dir))
    return _finish(factory, job_id, me, JobStatus.SUCCEEDED, trained_tokens=result.tokens_seen)


def _finish(factory: Any, job_id: str, me: str, status: JobStatus, **fields: Any) -> str:
    error: JobErrorInfo | None = fields.pop("error", None)
    try:
        with session_scope(factory) as session:
            finish_job(session, job_id, status, error=error, worker_id=me, **fields)
    except JobStateError as err:  # the lease expired meanwhile: the new owner decides
        logger.warning("could not finish %s: %s", job_id, err)
        return "lease lost"
    return status.value


def _file_paths(session: Any, job: Job, settings: Settings) -> dict[str, Path | None]:
    paths: dict[str, Path | None] = {}
    for field, file_id in (
        ("training_file", job.training_file_id),
        ("validation_file", job.validation_file_id),
    ):
        file = session.get(File, file_id) if file_id else None
        paths[field] = Path(settings.storage_dir) / file.storage_path if file is not None else None
    return paths
