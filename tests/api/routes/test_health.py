from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import (
    PROMPT_COMPLETION,
    Backend,
    Caller,
    assert_error,
    create_job,
    jsonl,
    make_settings,
    upload,
)


def test_healthz_is_ok_without_a_key(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_broker_answer(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.parametrize(
    ("overrides", "unreachable"),
    [
        ({"broker_url": "redis://127.0.0.1:1/0", "broker_timeout_seconds": 0.5}, "broker"),
        ({"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nope"}, "database"),
    ],
    ids=["broker-down", "database-down"],
)
def test_readyz_is_503_naming_what_is_unreachable(
    backend: Backend, tmp_path: Path, overrides: dict[str, object], unreachable: str
) -> None:
    settings = make_settings(backend.url, tmp_path).model_copy(update=overrides)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")

    error = assert_error(response, 503, "not_ready")
    assert unreachable in error["message"]


def test_metrics_exposes_jobs_by_status_queue_depth_and_latency(
    client: TestClient, caller: Caller, broker: redis.Redis
) -> None:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]
    create_job(client, caller, file_id)
    client.get("/v1/fine_tuning/jobs/ftjob-missing", headers=caller.headers)

    response = client.get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    queued = [line for line in lines if line.startswith('moetune_jobs{status="queued"}')]
    assert len(queued) == 1 and float(queued[0].split()[-1]) >= 1
    assert 'moetune_queue_depth{queue="training"} 1.0' in lines
    assert any(
        line.startswith("moetune_http_request_duration_seconds_count")
        and 'route="/v1/fine_tuning/jobs/{job_id}"' in line
        and 'status="404"' in line
        for line in lines
    )
    assert any('route="/v1/files"' in line and 'method="POST"' in line for line in lines)


def test_unknown_path_is_404_in_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_in_the_error_shape(client: TestClient, caller: Caller) -> None:
    assert_error(client.put("/v1/files", headers=caller.headers), 405, "method_not_allowed")


def test_settings_read_moetune_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOETUNE_DATABASE_URL", "postgresql+psycopg://u@db/moetune")
    monkeypatch.setenv("MOETUNE_MAX_UPLOAD_BYTES", "1024")
    monkeypatch.setenv("MOETUNE_BASE_MODELS", '["a", "b"]')

    settings = Settings()

    assert settings.database_url == "postgresql+psycopg://u@db/moetune"
    assert settings.max_upload_bytes == 1024 and settings.base_models == ["a", "b"]
