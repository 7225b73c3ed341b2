"""The heartbeat of a running job: renews the lease and picks up cancel requests, in a thread."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from db.jobs import renew_lease
from db.session import session_scope

logger = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """Another worker owns the job now (our lease expired): stop without writing anything."""


class Heartbeat:
    """Renews `job_id`'s lease every `interval` seconds until stopped."""

    def __init__(
        self, factory: sessionmaker[Session], job_id: str, worker_id: str, lease_seconds: int, interval: float
    ) -> None:
        self.factory, self.job_id, self.worker_id = factory, job_id, worker_id
        self.lease_seconds, self.interval = lease_seconds, interval
        self.cancel_requested = False
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        with session_scope(self.factory) as session:
            lease = renew_lease(session, self.job_id, self.worker_id, self.lease_seconds)
        self.cancel_requested = self.cancel_requested or lease.cancel_requested
        self.lost = self.lost or not lease.held

    def _run(self) -> None:
        while not self._stop.wait(self.interval) and not self.lost:
            try:
                self.beat()
            except Exception:  # a database blip: keep training, the lease has slack (interval << lease)
                logger.warning("heartbeat of %s failed", self.job_id, exc_info=True)
