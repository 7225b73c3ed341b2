"""`/v1/models`: the base models, then the tenant's fine-tuned adapters; other tenants see 404."""

from __future__ import annotations

from fastapi.testclient import TestClient
from openai import OpenAI

from api.settings import Settings
from db.jobs import claim_job, finish_job
from db.models import JobStatus
from db.records import register_model
from tests.api.conftest import PROMPT_COMPLETION, Backend, Caller, assert_error, create_job, jsonl, upload


def finished_model(client: TestClient, caller: Caller, backend: Backend, settings: Settings) -> str:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]
    job_id: str = create_job(client, caller, file_id, suffix="m", adapter={"type": "lora"})["id"]
    with backend.session_factory() as session:
        assert claim_job(session, job_id, "w", settings.lease_seconds) is not None
        register_model(session, job_id, f"jobs/{job_id}/adapter")
        finish_job(session, job_id, JobStatus.SUCCEEDED, worker_id="w")
    return f"ft:smollm2-135m-instruct:m:{job_id}"


def test_list_models_shows_base_models_then_the_tenants_adapters(
    client: TestClient, caller: Caller, other_caller: Caller, backend: Backend, settings: Settings
) -> None:
    model_id = finished_model(client, caller, backend, settings)
    mine = client.get("/v1/models", headers=caller.headers).json()
    assert mine["object"] == "list"
    assert [m["id"] for m in mine["data"]] == ["smollm2-135m-instruct", model_id]
    adapter = mine["data"][1]
    assert adapter["parent"] == "smollm2-135m-instruct" and adapter["adapter_type"] == "lora"
    assert adapter["owned_by"] and adapter["object"] == "model"
    theirs = client.get("/v1/models", headers=other_caller.headers).json()
    assert [m["id"] for m in theirs["data"]] == ["smollm2-135m-instruct"]


def test_read_model_and_cross_tenant_404(
    client: TestClient, caller: Caller, other_caller: Caller, backend: Backend, settings: Settings
) -> None:
    model_id = finished_model(client, caller, backend, settings)
    assert client.get(f"/v1/models/{model_id}", headers=caller.headers).json()["id"] == model_id
    assert client.get("/v1/models/smollm2-135m-instruct", headers=caller.headers).json()["parent"] is None
    assert_error(client.get(f"/v1/models/{model_id}", headers=other_caller.headers), 404, "not_found")
    assert_error(client.get("/v1/models/nope", headers=caller.headers), 404, "not_found")
    assert_error(client.get("/v1/models"), 401)


def test_openai_client_lists_models(
    client: TestClient, caller: Caller, backend: Backend, settings: Settings
) -> None:
    model_id = finished_model(client, caller, backend, settings)
    openai = OpenAI(base_url="http://testserver/v1", api_key=caller.key, http_client=client)
    assert model_id in [m.id for m in openai.models.list()]
    assert openai.models.retrieve(model_id).id == model_id
