"""Prometheus metrics: request latency, jobs by status, the training queue's depth, and the
inference servers' adapter cache and request counters.

Each app has its own registry (tests build many apps); the job and queue gauges are read at
scrape time, so they are correct however many API replicas there are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services.queue import TrainingQueue
from db.jobs import count_jobs_by_status
from db.models import JobStatus

logger = logging.getLogger(__name__)


class ServiceCollector(Collector):
    def __init__(self, session_factory: sessionmaker[Session], queue: TrainingQueue) -> None:
        self.session_factory = session_factory
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("moetune_jobs", "Fine-tuning jobs by status", labels=["status"])
        try:
            with self.session_factory() as session:
                counts = count_jobs_by_status(session)
            for status in JobStatus:
                jobs.add_metric([status.value], counts.get(status.value, 0))
            yield jobs
        except Exception:
            logger.warning("metrics: could not count jobs", exc_info=True)
        depth = GaugeMetricFamily("moetune_queue_depth", "Messages waiting in a task queue", labels=["queue"])
        try:
            depth.add_metric([self.queue.queue], self.queue.depth())
            yield depth
        except Exception:
            logger.warning("metrics: could not read the queue depth", exc_info=True)


class Telemetry:
    def __init__(self, session_factory: sessionmaker[Session], queue: TrainingQueue) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "moetune_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(ServiceCollector(session_factory, queue))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class LatencyMiddleware:
    """Time each HTTP request; the label is the route template, so ids do not explode cardinality."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.telemetry.latency.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - start
            )


def route_template(scope: Scope) -> str:
    """`/v1/fine_tuning/jobs/{job_id}` for `/v1/fine_tuning/jobs/ftjob-abc`; "unmatched" for a 404."""
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in scope["path"].split("/"))


class InferenceCollector(Collector):
    """The inference servers' counters (adapter cache, requests, tokens), as read at scrape time."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        cache: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "hits": CounterMetricFamily(
                "moetune_adapter_cache_hits", "Adapter cache hits", labels=["base_model"]
            ),
            "misses": CounterMetricFamily(
                "moetune_adapter_cache_misses", "Adapter cache misses", labels=["base_model"]
            ),
            "evictions": CounterMetricFamily(
                "moetune_adapter_cache_evictions", "Adapters evicted from the cache", labels=["base_model"]
            ),
            "bytes_used": GaugeMetricFamily(
                "moetune_adapter_cache_bytes", "Adapter cache bytes", labels=["base_model"]
            ),
            "entries": GaugeMetricFamily(
                "moetune_adapter_cache_entries", "Adapters cached", labels=["base_model"]
            ),
        }
        engine: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "requests_completed": CounterMetricFamily(
                "moetune_inference_requests", "Completed generation requests", labels=["base_model"]
            ),
            "completion_tokens": CounterMetricFamily(
                "moetune_inference_completion_tokens", "Generated tokens", labels=["base_model"]
            ),
            "queued": GaugeMetricFamily(
                "moetune_inference_queued", "Requests waiting", labels=["base_model"]
            ),
        }
        for base_model, stats in self.stats.items():
            for key, family in cache.items():
                family.add_metric([base_model], stats["cache"][key])
            for key, family in engine.items():
                family.add_metric([base_model], stats[key])
        yield from cache.values()
        yield from engine.values()


def inference_exposition(stats: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    registry.register(InferenceCollector(stats))
    return generate_latest(registry)
