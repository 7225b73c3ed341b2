"""End-to-end: the API in-process, a real Celery worker process, PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from cli.keys import create_key
from db.migrate import upgrade_database
from tests.api.conftest import PG_ADMIN_DSN, postgres_url  # noqa: F401  # the session database fixture
from tests.support import save_tiny_model

REDIS_URL = os.environ.get("MOETUNE_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/12")
ROOT = Path(__file__).resolve().parents[2]
assert PG_ADMIN_DSN


@pytest.fixture(scope="module")
def e2e_settings(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:  # noqa: F811
    root = tmp_path_factory.mktemp("e2e")
    model_dir = save_tiny_model(root / "tiny-llama")
    upgrade_database(postgres_url)
    redis.Redis.from_url(REDIS_URL).flushdb()
    return Settings(
        database_url=postgres_url,
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        storage_dir=root / "storage",
        auto_migrate=False,
        base_models=[str(model_dir)],
        lease_seconds=6,
        heartbeat_seconds=0.5,
        reaper_seconds=1.0,
        events_poll_seconds=0.05,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"MOETUNE_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"  # the test process computes too: keep the two off each other's cores
    return env


class Worker:
    """A `celery worker` process consuming the training and control queues, with the reaper's beat."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", "training,control",
             "--pool", "solo", "--concurrency", "1", "--prefetch-multiplier", "1", "-B",
             "--schedule", str(log.with_suffix(".beat")), "--loglevel", "INFO"],
            cwd=ROOT, env=settings_env(settings), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(e2e_settings: Settings, tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(e2e_settings, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="module")
def api(e2e_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(e2e_settings)) as client:
        yield client


@pytest.fixture
def headers(e2e_settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(f'e2e-{time.monotonic_ns()}', e2e_settings)}"}


def wait_for(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float,
             what: str) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {json.dumps(value)[:2000]}")
        time.sleep(0.1)
