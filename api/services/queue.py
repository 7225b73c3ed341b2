"""The training queue, seen from the API: a Celery client that sends tasks by name.

The API never imports the worker package (nor torch): it knows the task's name and queue only.
A job's task id is the job id, so the API can revoke a queued job's message; the worker's
`claim_job` is what really guards against running a cancelled job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy import make_url

from api.settings import Settings

logger = logging.getLogger(__name__)


class TrainingQueue:
    def __init__(self, broker_url: str, queue: str, task_name: str, timeout: float) -> None:
        self.queue = queue
        self.task_name = task_name
        self.timeout = timeout
        _ensure_sqlite_folder(broker_url)
        # No result backend: the job row is the result; the API never waits on a task.
        self.celery = Celery("moetune-api", broker=broker_url, backend=None, set_as_current=False)
        self.celery.conf.update(
            broker_connection_timeout=timeout,
            broker_connection_retry_on_startup=False,
            broker_transport_options=_transport_options(broker_url, timeout),
            task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingQueue:
        return cls(
            settings.broker_url,
            settings.training_queue,
            settings.training_task,
            settings.broker_timeout_seconds,
        )

    def enqueue(self, job_id: str) -> None:
        """Send the training task for `job_id` (the message carries only the id)."""
        self.celery.send_task(self.task_name, args=[job_id], queue=self.queue, task_id=job_id)

    def revoke(self, job_id: str) -> None:
        """Best effort: workers drop the message if it has not started (the database decides anyway)."""
        try:
            self.celery.control.revoke(job_id)
        except Exception:  # a broker without broadcast support, or down: the claim check still holds
            logger.warning("could not revoke the task of %s", job_id, exc_info=True)

    def depth(self) -> int:
        """Messages waiting in the training queue."""
        with self.celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout)
            try:
                declared = connection.default_channel.queue_declare(queue=self.queue, passive=True)
            except ChannelError:  # the queue does not exist yet: nothing was ever sent
                return 0
            return int(declared.message_count)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout)

    def close(self) -> None:
        self.celery.close()


def _ensure_sqlite_folder(broker_url: str) -> None:
    """The embedded broker (`sqla+sqlite:///path`) needs its file's folder to exist."""
    if not broker_url.startswith("sqla+sqlite:"):
        return
    database = make_url(broker_url.removeprefix("sqla+")).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _transport_options(broker_url: str, timeout: float) -> dict[str, float]:
    """Fail fast on an unreachable Redis (the API only publishes; it never blocks on a queue)."""
    if broker_url.startswith(("redis:", "rediss:")):
        return {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    return {}
