"""Liveness, readiness and Prometheus metrics (outside `/v1`, without authentication)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import QueueDep
from api.errors import APIError
from api.schemas.errors import ErrorResponse
from api.schemas.health import Health, Readiness
from api.telemetry import Telemetry, inference_exposition

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
def read_health() -> Health:
    """The process is up."""
    return Health()


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
def read_readiness(request: Request, queue: QueueDep) -> Readiness:
    """The database and the broker answer; 503 naming the one that does not."""
    failures = []
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        failures.append("database")
    try:
        queue.ping()
    except Exception as exc:
        logger.warning("readiness: broker unreachable: %s", exc)
        failures.append("broker")
    if failures:
        raise APIError(503, "not_ready", f"Unreachable: {', '.join(failures)}")
    return Readiness()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def read_metrics(request: Request) -> Response:
    """Prometheus exposition: request latency, jobs by status, training queue depth, adapter cache."""
    telemetry: Telemetry = request.app.state.telemetry
    body = await run_in_threadpool(telemetry.exposition)
    try:
        body += inference_exposition(await request.app.state.inference.stats())
    except Exception:  # no inference server up: the service's own metrics still go out
        logger.info("metrics: inference servers unreachable")
    return Response(body, media_type=CONTENT_TYPE_LATEST)
