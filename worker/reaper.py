"""The reaper: jobs whose worker stopped renewing its lease go back to the queue."""

from __future__ import annotations

import logging

from db.jobs import requeue_expired_leases
from db.session import session_scope
from worker.celery_app import REAP_TASK, TRAIN_TASK, app, settings_of
from worker.resources import session_factory

logger = logging.getLogger(__name__)


@app.task(name=REAP_TASK, acks_late=False)
def reap() -> list[str]:
    """Requeue (or fail, after too many attempts) every job with an expired lease; returns the requeued ids."""
    settings = settings_of(app)
    with session_scope(session_factory(settings)) as session:
        requeued = requeue_expired_leases(session, max_attempts=settings.max_attempts)
    for job_id in requeued:
        logger.warning("lease of %s expired: requeued", job_id)
        app.send_task(TRAIN_TASK, args=[job_id], queue=settings.training_queue, task_id=job_id)
    return requeued
