"""Creating and cancelling jobs: the request -> resolved spec -> validated files -> queued message path.

File validation runs inline, in the request's worker thread: uploads are capped by
`max_upload_bytes` and the validator streams line by line in bounded memory, so a create
answers with the job already `queued` or `failed` (and the verdict is cached on the file, so a
file is read once however many jobs use it). The token-length check needs the base model's
tokenizer (which the API does not load, to stay free of torch); the worker applies the
`truncation` policy when it tokenises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import db.files
import db.jobs
from api.errors import APIError
from api.schemas.jobs import DEFAULT_LEARNING_RATE, JobCreate
from api.services.queue import TrainingQueue
from api.services.storage import FileStorage
from api.settings import Settings
from core.data import validate
from core.jobs import JobSpec, JobSpecError
from db.jobs import JobErrorInfo, JobStateError, JobStatus
from db.models import File, FileStatus, Job, Tenant

logger = logging.getLogger(__name__)

MAX_PROBLEMS_IN_MESSAGE = 5
_AUTO_VALUES = ("n_epochs", "batch_size", "learning_rate_multiplier")


def create_job(
    session: Session,
    tenant: Tenant,
    body: JobCreate,
    *,
    settings: Settings,
    storage: FileStorage,
    queue: TrainingQueue,
    idempotency_key: str | None,
) -> Job:
    """Create, validate and enqueue a job; a replayed `Idempotency-Key` returns the first job."""
    request_hash = _request_hash(body)
    if idempotency_key is not None:
        replay = _replayed_job(session, tenant.id, idempotency_key, request_hash)
        if replay is not None:
            return replay
    spec = resolve_spec(body, settings)
    training = _job_file(session, tenant.id, body.training_file, "training_file")
    validation = None
    if body.validation_file is not None:
        validation = _job_file(session, tenant.id, body.validation_file, "validation_file")
    try:
        job = db.jobs.create_job(
            session,
            tenant_id=tenant.id,
            spec=spec,
            training_file_id=training.id,
            validation_file_id=validation.id if validation else None,
            suffix=body.suffix,
            metadata=body.metadata,
            idempotency=(idempotency_key, request_hash) if idempotency_key is not None else None,
        )
    except IntegrityError:  # a concurrent request with the same key won the insert
        session.rollback()
        replay = _replayed_job(session, tenant.id, idempotency_key or "", request_hash)
        if replay is None:
            raise
        return replay

    for file, param in ((training, "training_file"), (validation, "validation_file")):
        if file is None:
            continue
        error = _validate_file(session, storage, file, param)
        if error is not None:
            return db.jobs.finish_job(session, job.id, JobStatus.FAILED, error=error)
    job = db.jobs.mark_files_validated(session, job.id)
    try:
        queue.enqueue(job.id)
    except Exception as exc:
        logger.exception("could not enqueue %s", job.id)
        error = JobErrorInfo(
            code="queue_unavailable", message="the training queue is unreachable", param=None
        )
        db.jobs.finish_job(session, job.id, JobStatus.FAILED, error=error)
        raise APIError(503, "queue_unavailable", "The training queue is unreachable; try again") from exc
    return job


def cancel_job(session: Session, job: Job, queue: TrainingQueue) -> Job:
    """Cancel at once before the job runs (and revoke its message); ask a running job to stop."""
    try:
        job = db.jobs.request_cancel(session, job.id)
    except JobStateError as exc:
        raise APIError(409, "job_not_cancellable", f"Job {job.id} is already {exc.status}") from exc
    if job.status == JobStatus.CANCELLED:
        queue.revoke(job.id)
    return job


def resolve_spec(body: JobCreate, settings: Settings) -> dict[str, Any]:
    """Validate the request's training document with `JobSpec` and return it with every default resolved."""
    if body.model not in settings.base_models:
        available = ", ".join(settings.base_models)
        raise APIError(
            400,
            "model_not_available",
            f"Model '{body.model}' is not available; use one of: {available}",
            "model",
        )
    hyperparameters, prefix = _hyperparameters(body)
    document = {
        "model": body.model,
        "seed": body.seed if body.seed is not None else secrets.randbelow(2**31),
        "hyperparameters": hyperparameters,
        "adapter": body.adapter or {},
        "optimizer": body.optimizer or {},
    }
    try:
        spec = JobSpec.from_dict(document)
    except JobSpecError as err:
        param = err.field
        if param.startswith("hyperparameters.") and prefix != "hyperparameters":
            param = prefix + param.removeprefix("hyperparameters")
        raise APIError(400, "invalid_value", f"{param}: {err.message}", param) from None
    return spec.to_dict()


def _hyperparameters(body: JobCreate) -> tuple[dict[str, Any], str]:
    """The hyperparameters from either place OpenAI accepts them, OpenAI's conventions mapped to ours."""
    prefix = "hyperparameters"
    values = dict(body.hyperparameters or {})
    supervised = body.method.supervised if body.method is not None else None
    if supervised is not None and supervised.hyperparameters is not None:
        if body.hyperparameters is not None:
            message = "give hyperparameters or method.supervised.hyperparameters, not both"
            raise APIError(400, "invalid_request_error", message, "hyperparameters")
        prefix = "method.supervised.hyperparameters"
        values = dict(supervised.hyperparameters)
    for name in _AUTO_VALUES:
        if values.get(name) == "auto":
            del values[name]
    if "learning_rate_multiplier" in values:
        multiplier = values.pop("learning_rate_multiplier")
        param = f"{prefix}.learning_rate_multiplier"
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or multiplier <= 0:
            raise APIError(400, "invalid_value", f"{param}: expected a positive number", param)
        if "learning_rate" in values:
            raise APIError(
                400, "invalid_value", f"{param}: give learning_rate or learning_rate_multiplier", param
            )
        values["learning_rate"] = DEFAULT_LEARNING_RATE * multiplier
    return values, prefix


def _request_hash(body: JobCreate) -> str:
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_unset=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed_job(session: Session, tenant_id: str, key: str, request_hash: str) -> Job | None:
    record = db.jobs.get_idempotency_key(session, tenant_id, key)
    if record is None:
        return None
    if record.request_hash != request_hash:
        message = "This Idempotency-Key was already used with a different request body"
        raise APIError(409, "idempotency_key_reused", message)
    job = db.jobs.get_job(session, record.job_id, tenant_id)
    assert job is not None  # the key's row cascades with its job
    return job


def _job_file(session: Session, tenant_id: str, file_id: str, param: str) -> File:
    file = db.files.get_file(session, tenant_id, file_id)
    if file is None:
        raise APIError(400, "file_not_found", f"{param}: no file with id '{file_id}'", param)
    if file.purpose != "fine-tune":
        raise APIError(400, "invalid_file_purpose", f"{param}: file '{file_id}' is not for fine-tune", param)
    return file


def _validate_file(session: Session, storage: FileStorage, file: File, param: str) -> JobErrorInfo | None:
    """Run the data validator (once per file); the error names the first problems by line."""
    if file.status == FileStatus.UPLOADED:
        report = validate(storage.resolve(file.storage_path))
        details = None
        if not report.ok:
            shown = "; ".join(str(p) for p in report.problems[:MAX_PROBLEMS_IN_MESSAGE])
            more = report.num_problems - min(len(report.problems), MAX_PROBLEMS_IN_MESSAGE)
            details = f"{report.num_problems} problem(s): {shown}" + (f"; and {more} more" if more else "")
        db.files.set_validation_result(session, file, report.ok, details)
    if file.status == FileStatus.PROCESSED:
        return None
    kind = param.removesuffix("_file")
    return JobErrorInfo(
        code=f"invalid_{param}",
        message=f"The {kind} file {file.id} is invalid: {file.status_details}",
        param=param,
    )
