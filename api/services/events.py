"""Server-sent events that follow a job's log until the job is finished."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import anyio
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.schemas.job_records import JobEventPublic
from db.jobs import get_job
from db.models import TERMINAL_STATUSES, JobEvent
from db.records import events_since

KEEPALIVE_SECONDS = 15.0


def _poll(factory: sessionmaker[Session], job_id: str, after_seq: int) -> tuple[list[JobEvent], bool]:
    """The events after `after_seq`, and whether the job had finished before they were read.

    The status is read first: a job's final event commits with its terminal status, so once a
    finished job has no newer events, none will come.
    """
    with factory() as session:
        job = get_job(session, job_id)
        finished = job is None or job.status in TERMINAL_STATUSES
        return events_since(session, job_id, after_seq), finished


async def follow_events(
    request: Request, factory: sessionmaker[Session], job_id: str, after_seq: int, poll_seconds: float
) -> AsyncIterator[str]:
    """`id:`/`data:` frames, oldest first, then `data: [DONE]` once the job is finished."""
    last_sent = time.monotonic()
    while True:
        events, finished = await run_in_threadpool(_poll, factory, job_id, after_seq)
        for event in events:
            payload = JobEventPublic.from_row(event).model_dump(mode="json")
            yield f"id: {event.id}\ndata: {json.dumps(payload)}\n\n"
            after_seq = event.seq
        if events:
            last_sent = time.monotonic()
            continue
        if finished:
            yield "data: [DONE]\n\n"
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(poll_seconds)
