"""The trainer's metrics sink for the service: records, events and checkpoints go to the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.records import record_checkpoint, record_event, record_metrics
from db.session import session_scope

_EVENT_MESSAGES = {
    "started": "Training started",
    "resumed": "Training resumed",
    "eval": "Evaluation",
    "stopped": "Training stopped",
    "completed": "Training completed",
}


class DatabaseSink:
    """Each call is one short transaction, so API readers see progress as it happens."""

    def __init__(self, factory: sessionmaker[Session], job_id: str) -> None:
        self.factory, self.job_id = factory, job_id

    def log(self, record: dict[str, Any]) -> None:
        with session_scope(self.factory) as session:
            record_metrics(session, self.job_id, record)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        with session_scope(self.factory) as session:
            if kind == "checkpoint":
                record_checkpoint(
                    session, self.job_id, int(data["step"]), str(data["path"]), data.get("metrics")
                )
            else:
                title = _EVENT_MESSAGES.get(kind, kind.capitalize())
                record_event(session, self.job_id, f"{title}: {message}", data={"kind": kind, **data})

    def resumed(self, step: int) -> None:
        """Nothing to drop: `record_metrics` replaces the records at and after a re-logged step."""
