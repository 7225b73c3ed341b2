"""Events, checkpoints and metrics, written through the `db` functions the worker calls."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from db.jobs import claim_job, finish_job, update_progress
from db.models import JobStatus
from db.records import record_checkpoint, record_event, record_metrics, register_model
from tests.api.conftest import PROMPT_COMPLETION, Backend, Caller, assert_error, create_job, jsonl, upload


@pytest.fixture
def running_job(client: TestClient, caller: Caller, backend: Backend, settings: Settings) -> str:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]
    job_id: str = create_job(client, caller, file_id, suffix="demo")["id"]
    with backend.session_factory() as session:
        assert claim_job(session, job_id, "worker-1", settings.lease_seconds) is not None
    return job_id


def metric_record(step: int, **extra: Any) -> dict[str, Any]:
    return {
        "step": step,
        "epoch": step / 10,
        "train_loss": 2.0 / step,
        "learning_rate": 1e-4,
        "grad_norm": 0.5,
        "tokens_seen": 100 * step,
        "routing": {
            "layers.0.q_proj": {
                "expert_load": [0.5, 0.25, 0.25, 0.0],
                "router_entropy": 1.2,
                "gate_entropy": 0.6,
                "dead_experts": 1,
                "tokens": 40,
            }
        },
        "preconditioner": {
            "preconditioner": "riemannian",
            "solver_failures": 0,
            "layers": {"l0": {"cond_gram_A": 3.0}},
        },
        **extra,
    }


def sse_payloads(text: str) -> list[Any]:
    frames = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    return [frame if frame == "[DONE]" else json.loads(frame) for frame in frames]


def test_list_job_events_newest_first_with_cursor(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        record_event(session, running_job, "warming up", level="warn", data={"k": 1})
    url = f"/v1/fine_tuning/jobs/{running_job}/events"

    first = client.get(url, headers=caller.headers, params={"limit": 2}).json()
    rest = client.get(url, headers=caller.headers, params={"after": first["last_id"], "limit": 100}).json()

    newest = first["data"][0]
    assert newest["object"] == "fine_tuning.job.event"
    assert newest["message"] == "warming up" and newest["level"] == "warn" and newest["data"] == {"k": 1}
    assert newest["type"] == "message" and isinstance(newest["created_at"], int)
    assert first["has_more"] is True and rest["has_more"] is False
    messages = [e["message"] for e in first["data"] + rest["data"]]
    assert messages[-1].startswith("Created fine-tuning job")
    assert "Files validated, job queued" in messages
    assert len(set(e["id"] for e in first["data"] + rest["data"])) == len(messages)


def test_list_job_events_with_an_unknown_cursor_is_404_naming_after(
    client: TestClient, caller: Caller, running_job: str
) -> None:
    response = client.get(
        f"/v1/fine_tuning/jobs/{running_job}/events", headers=caller.headers, params={"after": "ftevent-x"}
    )

    assert_error(response, 404, "not_found", "after")


def test_stream_job_events_of_a_finished_job_sends_all_then_done(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        finish_job(session, running_job, JobStatus.SUCCEEDED, worker_id="worker-1")

    response = client.get(
        f"/v1/fine_tuning/jobs/{running_job}/events", headers=caller.headers, params={"stream": "true"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    messages = [p["message"] for p in payloads[:-1]]
    assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "Job succeeded"


def test_stream_job_events_follows_new_events_until_the_job_ends(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    listed = client.get(f"/v1/fine_tuning/jobs/{running_job}/events", headers=caller.headers).json()

    def train() -> None:
        time.sleep(0.3)
        with backend.session_factory() as session:
            record_metrics(session, running_job, metric_record(1))
            time.sleep(0.2)
            finish_job(session, running_job, JobStatus.SUCCEEDED, worker_id="worker-1")

    worker = threading.Thread(target=train)
    worker.start()
    started = time.monotonic()
    response = client.get(
        f"/v1/fine_tuning/jobs/{running_job}/events",
        headers=caller.headers,
        params={"stream": "true", "after": listed["first_id"]},
    )
    worker.join()

    assert time.monotonic() - started >= 0.4  # it waited for the events written after the request
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    events = payloads[:-1]
    assert [e["type"] for e in events] == ["metrics", "message"]
    assert events[0]["data"]["train_loss"] == pytest.approx(2.0) and "routing" not in events[0]["data"]
    assert events[1]["message"] == "Job succeeded"


def test_list_job_checkpoints_latest_first_in_openai_shape(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        for step in (10, 20, 30):
            record_checkpoint(
                session, running_job, step, f"jobs/{running_job}/ckpt-{step}", {"train_loss": 1.0 / step}
            )
    url = f"/v1/fine_tuning/jobs/{running_job}/checkpoints"

    first = client.get(url, headers=caller.headers, params={"limit": 2}).json()
    rest = client.get(url, headers=caller.headers, params={"after": first["last_id"]}).json()

    assert [c["step_number"] for c in first["data"]] == [30, 20] and first["has_more"] is True
    assert [c["step_number"] for c in rest["data"]] == [10] and rest["has_more"] is False
    checkpoint = first["data"][0]
    assert checkpoint["id"].startswith("ftckpt-")
    assert checkpoint["object"] == "fine_tuning.job.checkpoint"
    assert checkpoint["fine_tuning_job_id"] == running_job
    assert (
        checkpoint["fine_tuned_model_checkpoint"]
        == f"ft:smollm2-135m-instruct:demo:{running_job}:ckpt-step-30"
    )
    assert checkpoint["metrics"]["step"] == 30 and checkpoint["metrics"]["train_loss"] == pytest.approx(
        1 / 30
    )


def test_a_checkpoint_saved_again_at_the_same_step_replaces_the_first(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        record_checkpoint(session, running_job, 10, "old", {"train_loss": 9.0})
        record_checkpoint(session, running_job, 10, "new", {"train_loss": 1.0})

    data = client.get(f"/v1/fine_tuning/jobs/{running_job}/checkpoints", headers=caller.headers).json()[
        "data"
    ]

    assert len(data) == 1 and data[0]["metrics"]["train_loss"] == 1.0


def test_read_job_metrics_builds_step_aligned_series(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        record_metrics(session, running_job, metric_record(1))
        record_metrics(session, running_job, metric_record(2, valid_loss=0.9, valid_mean_token_accuracy=0.7))
        record_metrics(session, running_job, metric_record(3, train_loss=float("nan")))

    body = client.get(f"/v1/fine_tuning/jobs/{running_job}/metrics", headers=caller.headers).json()

    assert body["object"] == "fine_tuning.job.metrics" and body["job_id"] == running_job
    assert body["steps"] == [1, 2, 3]
    series = body["series"]
    assert series["train_loss"] == [pytest.approx(2.0), pytest.approx(1.0), None]  # NaN is stored as null
    assert series["valid_loss"] == [None, 0.9, None]
    assert series["valid_mean_token_accuracy"] == [None, 0.7, None]
    assert series["learning_rate"] == [1e-4] * 3 and series["tokens_seen"] == [100, 200, 300]
    layer = series["routing"]["layers.0.q_proj"]
    assert layer["expert_load"] == [[0.5, 0.25, 0.25, 0.0]] * 3
    assert layer["router_entropy"] == [1.2] * 3 and layer["dead_experts"] == [1] * 3
    assert series["preconditioner"]["solver_failures"] == [0, 0, 0]
    assert series["preconditioner"]["layers"]["l0"]["cond_gram_A"] == [3.0] * 3

    later = client.get(
        f"/v1/fine_tuning/jobs/{running_job}/metrics", headers=caller.headers, params={"after_step": 2}
    ).json()
    assert later["steps"] == [3]


def test_metrics_logged_again_after_a_resume_replace_the_old_tail(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        for step in (1, 2, 3, 4):
            record_metrics(session, running_job, metric_record(step))
        record_metrics(session, running_job, metric_record(3, train_loss=0.123))  # resumed from step 2

    body = client.get(f"/v1/fine_tuning/jobs/{running_job}/metrics", headers=caller.headers).json()

    assert body["steps"] == [1, 2, 3]
    assert body["series"]["train_loss"][-1] == pytest.approx(0.123)


def test_job_shows_progress_and_the_registered_model(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        assert update_progress(
            session, running_job, "worker-1", step=5, total_steps=20, epoch=0.25, eta_seconds=30.0
        )
        running = client.get(f"/v1/fine_tuning/jobs/{running_job}", headers=caller.headers).json()
        register_model(session, running_job, f"jobs/{running_job}/adapter")
        finish_job(session, running_job, JobStatus.SUCCEEDED, worker_id="worker-1", trained_tokens=1234)

    done = client.get(f"/v1/fine_tuning/jobs/{running_job}", headers=caller.headers).json()

    assert running["status"] == "running" and running["started_at"] is not None
    assert running["progress"] == {"step": 5, "total_steps": 20, "epoch": 0.25, "eta_seconds": 30.0}
    assert done["status"] == "succeeded" and done["finished_at"] >= done["created_at"]
    assert done["fine_tuned_model"] == f"ft:smollm2-135m-instruct:demo:{running_job}"
    assert done["trained_tokens"] == 1234


def test_stream_job_events_resumes_after_last_event_id(
    client: TestClient, caller: Caller, running_job: str, backend: Backend
) -> None:
    with backend.session_factory() as session:
        finish_job(session, running_job, JobStatus.SUCCEEDED, worker_id="worker-1")
    url = f"/v1/fine_tuning/jobs/{running_job}/events"
    everything = sse_payloads(client.get(url, headers=caller.headers, params={"stream": "true"}).text)[:-1]

    resumed = client.get(
        url, headers={**caller.headers, "Last-Event-ID": everything[1]["id"]}, params={"stream": "true"}
    )

    assert [e["id"] for e in sse_payloads(resumed.text)[:-1]] == [e["id"] for e in everything[2:]]
