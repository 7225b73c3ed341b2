"""Fixtures for the service tests: real PostgreSQL and SQLite databases built by the migrations,
Redis as the broker, one app per backend, a fresh tenant per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from api.settings import Settings
from cli.keys import create_key
from db.migrate import upgrade_database
from db.session import make_engine, make_session_factory

PG_ADMIN_DSN = os.environ.get(
    "MOETUNE_TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get("MOETUNE_TEST_PG_URL_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("MOETUNE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")  # a DB of its own, flushed
BASE_MODEL = "smollm2-135m-instruct"

PROMPT_COMPLETION = [{"prompt": f"2+{i}=", "completion": str(2 + i)} for i in range(6)]
CHAT = [
    {"messages": [{"role": "user", "content": f"Say {w}"}, {"role": "assistant", "content": w}]}
    for w in ("red", "green", "blue", "cyan")
]


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


BAD_JSONL = b'{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": \n{"prompt": "d"}\n'


@dataclass
class Backend:
    name: str
    url: str
    session_factory: sessionmaker[Session]


@dataclass
class Caller:
    """A tenant as seen by a client: its API key and the headers carrying it."""

    tenant: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"moetune_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_URL_BASE}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Each backend's schema is built by the Alembic migrations, once per session."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'moetune.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    yield Backend(request.param, url, make_session_factory(engine))
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def broker(redis_client: redis.Redis) -> redis.Redis:
    """The broker's Redis database, emptied for the test."""
    redis_client.flushdb()
    return redis_client


def make_settings(database_url: str, storage: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "storage_dir": storage,
        "auto_migrate": False,
        "events_poll_seconds": 0.05,
        "base_models": [BASE_MODEL],
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="module")
def settings(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis
) -> Settings:
    return make_settings(backend.url, tmp_path_factory.mktemp("storage"))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def new_caller(settings: Settings) -> Caller:
    name = f"tenant-{uuid.uuid4().hex[:10]}"
    return Caller(tenant=name, key=create_key(name, settings))


@pytest.fixture
def caller(settings: Settings) -> Caller:
    return new_caller(settings)


@pytest.fixture
def other_caller(settings: Settings) -> Caller:
    return new_caller(settings)


@pytest.fixture
def session(backend: Backend) -> Iterator[Session]:
    with backend.session_factory() as db_session:
        yield db_session


def upload(
    client: TestClient, caller: Caller, content: bytes, filename: str = "train.jsonl"
) -> dict[str, Any]:
    response = client.post(
        "/v1/files",
        headers=caller.headers,
        files={"file": (filename, content, "application/jsonl")},
        data={"purpose": "fine-tune"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create_job(client: TestClient, caller: Caller, training_file: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": BASE_MODEL, "training_file": training_file, **fields},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(
    response: Any, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The response is `status` with the error shape (and the given code and param)."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error
