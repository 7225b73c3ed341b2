from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.settings import Settings
from db.jobs import claim_job, finish_job
from db.models import JobStatus
from tests.api.conftest import (
    BAD_JSONL,
    BASE_MODEL,
    CHAT,
    PROMPT_COMPLETION,
    Backend,
    Caller,
    assert_error,
    create_job,
    jsonl,
    upload,
)


@pytest.fixture
def training_file(client: TestClient, caller: Caller) -> str:
    file_id: str = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]
    return file_id


def queued_task_ids(broker: redis.Redis, queue: str = "training") -> list[str]:
    """The Celery task ids waiting in the Redis list of `queue`."""
    messages = [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
    assert all(m["headers"]["task"] == "moetune.train" for m in messages)
    return [m["headers"]["id"] for m in messages]


def test_create_job_queues_it_and_sends_the_training_task_by_name(
    client: TestClient, caller: Caller, broker: redis.Redis
) -> None:
    file_id = upload(client, caller, jsonl(CHAT))["id"]

    job = create_job(
        client,
        caller,
        file_id,
        hyperparameters={"n_epochs": 2, "batch_size": 2},
        adapter={"type": "moe_lora", "num_experts": 4, "top_k": 1},
        optimizer={"type": "adamw", "gate_strategy": "classic"},
        seed=7,
        suffix="colors",
        metadata={"team": "vision"},
    )

    assert job["id"].startswith("ftjob-")
    assert job["object"] == "fine_tuning.job"
    assert job["status"] == "queued"
    assert job["model"] == BASE_MODEL
    assert job["training_file"] == file_id and job["validation_file"] is None
    assert job["seed"] == 7 and job["suffix"] == "colors" and job["metadata"] == {"team": "vision"}
    assert job["hyperparameters"]["n_epochs"] == 2 and job["hyperparameters"]["batch_size"] == 2
    assert job["hyperparameters"]["learning_rate_multiplier"] == pytest.approx(1.0)
    assert job["adapter"]["num_experts"] == 4 and job["adapter"]["top_k"] == 1
    assert job["optimizer"]["type"] == "adamw"
    assert job["optimizer"]["gate_grad_exponent"] == 1.0  # the named strategy, resolved
    assert job["progress"] == {"step": 0, "total_steps": None, "epoch": None, "eta_seconds": None}
    assert job["error"] is None and job["fine_tuned_model"] is None and job["result_files"] == []
    assert job["organization_id"].startswith("org-")
    assert broker.llen("training") == 1
    assert queued_task_ids(broker) == [job["id"]]


def test_create_job_resolves_and_stores_every_default(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    job = create_job(client, caller, training_file)

    assert isinstance(job["seed"], int)
    assert (
        job["adapter"]["type"] == "moe_lora"
        and job["adapter"]["num_experts"] == 8
        and job["adapter"]["top_k"] == 2
    )
    assert (
        job["optimizer"]["preconditioner"] == "riemannian"
        and job["optimizer"]["gate_strategy"] == "gate_rescaled"
    )
    assert job["hyperparameters"]["max_seq_length"] == 512


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"learning_rate": "fast"}}, "hyperparameters.learning_rate"),
        ({"hyperparameters": {"no_such_thing": 1}}, "hyperparameters.no_such_thing"),
        ({"adapter": {"type": "ia3"}}, "adapter.type"),
        ({"optimizer": {"betas": [0.9, 1.5]}}, "optimizer.betas[1]"),
        (
            {"optimizer": {"gate_strategy": "classic", "gate_grad_exponent": 0.5}},
            "optimizer.gate_grad_exponent",
        ),
        ({"hyperparameters": {"learning_rate_multiplier": -1}}, "hyperparameters.learning_rate_multiplier"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
        ),
    ],
)
def test_create_job_with_an_invalid_spec_is_400_naming_the_field(
    client: TestClient, caller: Caller, training_file: str, fields: dict[str, Any], param: str
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": BASE_MODEL, "training_file": training_file, **fields},
    )

    error = assert_error(response, 400, "invalid_value", param)
    assert param in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"seed": "abc"}, "seed"),
        ({"suffix": "has:colon"}, "suffix"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"integrations": []}, "integrations"),
        ({"method": {"type": "dpo"}}, "method.type"),
    ],
)
def test_create_job_with_a_malformed_body_is_400_naming_the_field(
    client: TestClient, caller: Caller, training_file: str, fields: dict[str, Any], param: str
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": BASE_MODEL, "training_file": training_file, **fields},
    )

    assert_error(response, 400, "invalid_request_error", param)


def test_create_job_without_training_file_is_400_naming_it(client: TestClient, caller: Caller) -> None:
    response = client.post("/v1/fine_tuning/jobs", headers=caller.headers, json={"model": BASE_MODEL})

    assert_error(response, 400, "invalid_request_error", "training_file")


def test_create_job_with_invalid_json_is_400(client: TestClient, caller: Caller) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers={**caller.headers, "Content-Type": "application/json"},
        content=b'{"model": ',
    )

    assert_error(response, 400, "invalid_request_error")


def test_create_job_for_an_unknown_base_model_is_400_naming_model(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": "gpt-5", "training_file": training_file},
    )

    error = assert_error(response, 400, "model_not_available", "model")
    assert BASE_MODEL in error["message"]


def test_create_job_with_an_unknown_file_is_400_naming_training_file(
    client: TestClient, caller: Caller
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": BASE_MODEL, "training_file": "file-nope"},
    )

    assert_error(response, 400, "file_not_found", "training_file")


def test_create_job_with_another_tenants_file_is_400_as_if_unknown(
    client: TestClient, caller: Caller, other_caller: Caller, training_file: str
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=other_caller.headers,
        json={"model": BASE_MODEL, "training_file": training_file},
    )

    assert_error(response, 400, "file_not_found", "training_file")


def test_create_job_with_an_unknown_validation_file_is_400_naming_it(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=caller.headers,
        json={"model": BASE_MODEL, "training_file": training_file, "validation_file": "file-nope"},
    )

    assert_error(response, 400, "file_not_found", "validation_file")


def test_create_job_with_a_bad_training_file_fails_it_naming_the_lines(
    client: TestClient, caller: Caller, broker: redis.Redis
) -> None:
    file_id = upload(client, caller, BAD_JSONL)["id"]

    job = create_job(client, caller, file_id)

    assert job["status"] == "failed"
    assert job["finished_at"] is not None
    error = job["error"]
    assert error["code"] == "invalid_training_file" and error["param"] == "training_file"
    assert "line 2: invalid JSON" in error["message"]
    assert "line 3" in error["message"] and "completion" in error["message"]
    assert broker.llen("training") == 0
    file = client.get(f"/v1/files/{file_id}", headers=caller.headers).json()
    assert file["status"] == "error" and "line 2" in file["status_details"]


def test_create_job_with_a_bad_validation_file_fails_it_naming_validation_file(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    validation = upload(client, caller, b"")["id"]

    job = create_job(client, caller, training_file, validation_file=validation)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_validation_file" and job["error"]["param"] == "validation_file"
    assert "empty file" in job["error"]["message"]


def test_a_file_is_validated_once_and_reused(client: TestClient, caller: Caller, training_file: str) -> None:
    create_job(client, caller, training_file)

    second = create_job(client, caller, training_file)

    assert second["status"] == "queued"
    assert client.get(f"/v1/files/{training_file}", headers=caller.headers).json()["status"] == "processed"


def test_create_job_takes_openai_method_block_and_learning_rate_multiplier(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    method = {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 2}},
    }

    job = create_job(client, caller, training_file, method=method)

    assert job["hyperparameters"]["n_epochs"] == 3
    assert job["hyperparameters"]["learning_rate"] == pytest.approx(2e-4)
    assert job["hyperparameters"]["learning_rate_multiplier"] == pytest.approx(2.0)


def test_create_job_accepts_auto_for_openai_hyperparameters(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    job = create_job(
        client, caller, training_file, hyperparameters={"n_epochs": "auto", "batch_size": "auto"}
    )

    assert job["hyperparameters"]["n_epochs"] == 1 and job["hyperparameters"]["batch_size"] == 8


def test_same_idempotency_key_and_body_returns_the_same_job(
    client: TestClient, caller: Caller, training_file: str, broker: redis.Redis
) -> None:
    headers = {**caller.headers, "Idempotency-Key": "create-1"}
    body = {"model": BASE_MODEL, "training_file": training_file, "seed": 3}

    first = client.post("/v1/fine_tuning/jobs", headers=headers, json=body)
    again = client.post("/v1/fine_tuning/jobs", headers=headers, json=body)

    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert broker.llen("training") == 1
    assert len(client.get("/v1/fine_tuning/jobs", headers=caller.headers).json()["data"]) == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(
    client: TestClient, caller: Caller, training_file: str
) -> None:
    headers = {**caller.headers, "Idempotency-Key": "create-2"}
    client.post(
        "/v1/fine_tuning/jobs", headers=headers, json={"model": BASE_MODEL, "training_file": training_file}
    )

    response = client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={"model": BASE_MODEL, "training_file": training_file, "seed": 1},
    )

    assert_error(response, 409, "idempotency_key_reused")


def test_idempotency_keys_belong_to_their_tenant(
    client: TestClient, caller: Caller, other_caller: Caller, training_file: str
) -> None:
    other_file = upload(client, other_caller, jsonl(PROMPT_COMPLETION))["id"]
    mine = client.post(
        "/v1/fine_tuning/jobs",
        headers={**caller.headers, "Idempotency-Key": "shared"},
        json={"model": BASE_MODEL, "training_file": training_file},
    )

    theirs = client.post(
        "/v1/fine_tuning/jobs",
        headers={**other_caller.headers, "Idempotency-Key": "shared"},
        json={"model": BASE_MODEL, "training_file": other_file},
    )

    assert theirs.status_code == 200 and theirs.json()["id"] != mine.json()["id"]


def test_list_jobs_pages_newest_first(client: TestClient, caller: Caller, training_file: str) -> None:
    ids = [create_job(client, caller, training_file)["id"] for _ in range(3)]

    first = client.get("/v1/fine_tuning/jobs", headers=caller.headers, params={"limit": 2}).json()
    rest = client.get(
        "/v1/fine_tuning/jobs", headers=caller.headers, params={"limit": 2, "after": first["last_id"]}
    ).json()

    assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    assert [j["id"] for j in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert rest["first_id"] == rest["last_id"] == ids[0]


def test_list_jobs_with_an_unknown_cursor_is_404_naming_after(client: TestClient, caller: Caller) -> None:
    response = client.get("/v1/fine_tuning/jobs", headers=caller.headers, params={"after": "ftjob-nope"})

    assert_error(response, 404, "not_found", "after")


def test_read_job(client: TestClient, caller: Caller, training_file: str) -> None:
    job = create_job(client, caller, training_file)

    response = client.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=caller.headers)

    assert response.status_code == 200 and response.json() == job


def test_read_unknown_job_is_404(client: TestClient, caller: Caller) -> None:
    assert_error(client.get("/v1/fine_tuning/jobs/ftjob-nope", headers=caller.headers), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/fine_tuning/jobs/{id}"),
        ("POST", "/v1/fine_tuning/jobs/{id}/cancel"),
        ("GET", "/v1/fine_tuning/jobs/{id}/events"),
        ("GET", "/v1/fine_tuning/jobs/{id}/checkpoints"),
        ("GET", "/v1/fine_tuning/jobs/{id}/metrics"),
    ],
)
def test_other_tenants_job_is_not_found(
    client: TestClient, caller: Caller, other_caller: Caller, training_file: str, method: str, path: str
) -> None:
    job = create_job(client, caller, training_file)

    response = client.request(method, path.format(id=job["id"]), headers=other_caller.headers)

    assert_error(response, 404, "not_found")
    assert (
        client.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=caller.headers).json()["status"] == "queued"
    )
    assert job["id"] not in [
        j["id"] for j in client.get("/v1/fine_tuning/jobs", headers=other_caller.headers).json()["data"]
    ]


def test_cancel_queued_job_cancels_it_at_once(client: TestClient, caller: Caller, training_file: str) -> None:
    job = create_job(client, caller, training_file)

    response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"] is not None


def test_cancel_job_that_is_running_asks_it_to_stop_at_next_step(
    client: TestClient, caller: Caller, training_file: str, backend: Backend, settings: Settings
) -> None:
    job = create_job(client, caller, training_file)
    with backend.session_factory() as session:
        assert claim_job(session, job["id"], "worker-1", settings.lease_seconds) is not None

    response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=caller.headers)

    assert response.status_code == 200 and response.json()["status"] == "cancel_requested"
    with backend.session_factory() as session:
        finish_job(session, job["id"], JobStatus.CANCELLED, worker_id="worker-1")
    assert (
        client.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=caller.headers).json()["status"]
        == "cancelled"
    )


def test_cancel_finished_job_is_a_conflict(
    client: TestClient, caller: Caller, training_file: str, backend: Backend
) -> None:
    job = create_job(client, caller, training_file)
    client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=caller.headers)

    response = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=caller.headers)

    assert_error(response, 409, "job_not_cancellable")
    assert response.headers["x-should-retry"] == "false"
