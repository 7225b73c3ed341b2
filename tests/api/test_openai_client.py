"""The stock `openai` client drives the service with only `base_url` changed."""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from api.settings import Settings
from db.jobs import claim_job
from db.records import record_checkpoint, record_event
from tests.api.conftest import BAD_JSONL, BASE_MODEL, CHAT, Backend, Caller, jsonl


@pytest.fixture
def openai_client(client: TestClient, caller: Caller) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=caller.key, http_client=client, max_retries=0)


def test_openai_client_uploads_trains_lists_and_cancels(
    openai_client: OpenAI, backend: Backend, settings: Settings
) -> None:
    uploaded = openai_client.files.create(file=("colors.jsonl", jsonl(CHAT)), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(jsonl(CHAT))
    assert openai_client.files.retrieve(uploaded.id).filename == "colors.jsonl"
    assert openai_client.files.content(uploaded.id).content == jsonl(CHAT)
    assert uploaded.id in [f.id for f in openai_client.files.list()]

    job = openai_client.fine_tuning.jobs.create(
        model=BASE_MODEL,
        training_file=uploaded.id,
        hyperparameters={"n_epochs": 2, "batch_size": 2},
        suffix="colors",
        seed=11,
        extra_body={
            "adapter": {"type": "moe_lora", "num_experts": 4, "top_k": 2, "rank": 8},
            "optimizer": {"type": "sgd", "preconditioner": "riemannian", "gate_strategy": "gate_rescaled"},
        },
    )
    assert job.status == "queued" and job.seed == 11
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 2
    extra = job.model_extra or {}
    assert extra["adapter"]["num_experts"] == 4 and extra["adapter"]["rank"] == 8
    assert extra["optimizer"]["gate_grad_exponent"] == 0.5
    assert extra["progress"]["step"] == 0

    assert openai_client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert job.id in [j.id for j in openai_client.fine_tuning.jobs.list(limit=5)]

    with backend.session_factory() as session:
        claim_job(session, job.id, "worker-9", settings.lease_seconds)
        for i in range(25):
            record_event(session, job.id, f"step {i}")
        record_checkpoint(session, job.id, 50, "ckpt-50", {"train_loss": 0.5, "valid_loss": 0.6})

    events = list(openai_client.fine_tuning.jobs.list_events(job.id, limit=10))  # auto-paginates
    assert len(events) == 25 + 5  # created, validating, queued, started, checkpoint
    assert events[0].message == "Checkpoint created at step 50"
    assert all(e.object == "fine_tuning.job.event" for e in events)

    checkpoints = list(openai_client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [50]
    assert checkpoints[0].metrics.valid_loss == 0.6
    assert checkpoints[0].fine_tuned_model_checkpoint.endswith(f"{job.id}:ckpt-step-50")

    cancelled = openai_client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancel_requested"  # tolerated by the client: not in its Literal
    assert openai_client.fine_tuning.jobs.retrieve(job.id).status == "cancel_requested"

    with pytest.raises(openai.ConflictError):  # the running job still reads it
        openai_client.files.delete(uploaded.id)
    spare = openai_client.files.create(file=("spare.jsonl", jsonl(CHAT)), purpose="fine-tune")
    deleted = openai_client.files.delete(spare.id)
    assert deleted.id == spare.id and deleted.deleted is True


def test_openai_client_sees_a_bad_training_file_as_a_failed_job(openai_client: OpenAI) -> None:
    uploaded = openai_client.files.create(file=("bad.jsonl", BAD_JSONL), purpose="fine-tune")

    job = openai_client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id)

    assert job.status == "failed"
    assert job.error is not None and job.error.param == "training_file" and "line 2" in job.error.message


def test_openai_client_raises_typed_errors_with_the_param(openai_client: OpenAI, client: TestClient) -> None:
    uploaded = openai_client.files.create(file=("colors.jsonl", jsonl(CHAT)), purpose="fine-tune")

    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=uploaded.id, hyperparameters={"batch_size": 0}
        )
    with pytest.raises(openai.NotFoundError):
        openai_client.fine_tuning.jobs.retrieve("ftjob-unknown")
    with pytest.raises(openai.AuthenticationError):
        OpenAI(
            base_url="http://testserver/v1", api_key="mt-wrong", http_client=client, max_retries=0
        ).files.list()

    assert bad.value.param == "hyperparameters.batch_size"
    assert bad.value.code == "invalid_value"
