"""The Celery app of the workers.

Delivery: a training task carries only the job id; the SQL row is the source of truth. Tasks
are acknowledged late (after they return) and rejected if the worker process dies, so a lost
worker's message goes back to the queue. Redis redelivers a message that stays unacknowledged
past the visibility timeout; long jobs would then be delivered twice, which is harmless: the
second delivery finds the job leased to the first worker (`claim_job` returns None) and is
acknowledged without running. What brings back the job of a dead worker is the lease: the
reaper (a beat task) requeues jobs whose lease expired, and they resume from their last
checkpoint. One training task per worker process (concurrency 1 per GPU, prefetch 1).
"""

from __future__ import annotations

from celery import Celery

from api.settings import Settings

TRAIN_TASK = "moetune.train"
REAP_TASK = "moetune.reap"


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery("moetune", broker=settings.broker_url, include=["worker.tasks.training", "worker.reaper"])
    transport: dict[str, object] = {}
    if settings.broker_url.startswith(("redis:", "rediss:")):
        transport["visibility_timeout"] = settings.visibility_timeout_seconds
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # the job row is the result
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_routes={TRAIN_TASK: {"queue": settings.training_queue}, REAP_TASK: {"queue": "control"}},
        beat_schedule={"reap-expired-leases": {"task": REAP_TASK, "schedule": settings.reaper_seconds}},
        worker_hijack_root_logger=False,
    )
    app.conf.moetune_settings = settings
    return app


app = create_celery()


def settings_of(celery: Celery) -> Settings:
    settings = celery.conf.moetune_settings
    assert isinstance(settings, Settings)
    return settings
