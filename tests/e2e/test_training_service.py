"""Upload -> job -> a real worker trains -> succeeded -> model listed; cancel; SIGKILL and resume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.core.trainer.conftest import QUESTIONS

pytestmark = pytest.mark.slow


def dataset(n: int) -> bytes:
    rows = [{"prompt": f"{QUESTIONS[i % 4][0]} ({i})", "completion": QUESTIONS[i % 4][1]} for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def submit(
    api, headers, settings, max_steps: int, checkpoint_every: int, valid: bool = False
) -> dict[str, Any]:
    def upload(name: str, n: int) -> str:
        response = api.post("/v1/files", headers=headers, files={"file": (name, dataset(n), "application/jsonl")},
                            data={"purpose": "fine-tune"})  # fmt: skip
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    body = {
        "model": settings.base_models[0],
        "training_file": upload("train.jsonl", 16),
        "suffix": "e2e",
        "hyperparameters": {"max_steps": max_steps, "batch_size": 4, "learning_rate": 0.05,
                            "checkpoint_every": checkpoint_every, "eval_every": max_steps, "max_seq_length": 64,
                            "eval_max_new_tokens": 3},
        "adapter": {"num_experts": 4, "top_k": 2, "rank": 2, "target_modules": ["q_proj", "v_proj"]},
        "optimizer": {"type": "sgd", "gate_strategy": "gate_rescaled", "router_learning_rate": 0.01},
    }  # fmt: skip
    if valid:
        body["validation_file"] = upload("valid.jsonl", 4)
    response = api.post("/v1/fine_tuning/jobs", headers=headers, json=body)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "queued", job
    return dict(job)


def all_events(api, headers, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job, oldest first, through the cursor pages."""
    events: list[dict[str, Any]] = []
    after = ""
    while True:
        page = api.get(f"/v1/fine_tuning/jobs/{job_id}/events?limit=100{after}", headers=headers).json()
        events += page["data"]
        if not page["has_more"]:
            return events[::-1]
        after = f"&after={page['last_id']}"


def job_state(api, headers, job_id: str):
    return lambda: api.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()


def test_job_trains_on_a_real_worker_and_its_model_is_listed(
    api, headers, e2e_settings, start_worker
) -> None:
    from tests.e2e.conftest import wait_for

    start_worker()
    job = submit(api, headers, e2e_settings, max_steps=6, checkpoint_every=3, valid=True)
    done = wait_for(
        job_state(api, headers, job["id"]), lambda j: j["status"] in ("succeeded", "failed"), 180, "success"
    )
    assert done["status"] == "succeeded", done
    assert done["fine_tuned_model"] == f"ft:{e2e_settings.base_models[0]}:e2e:{job['id']}"
    assert done["trained_tokens"] > 0 and done["progress"]["step"] == 6
    models = api.get("/v1/models", headers=headers).json()["data"]
    assert done["fine_tuned_model"] in [m["id"] for m in models]
    checkpoints = api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", headers=headers).json()["data"]
    assert sorted(c["step_number"] for c in checkpoints) == [3, 6]
    metrics = api.get(f"/v1/fine_tuning/jobs/{job['id']}/metrics", headers=headers).json()
    assert len(metrics["series"]["train_loss"]) == 6 and metrics["series"]["routing"]
    events = [e["message"] for e in all_events(api, headers, job["id"])]
    assert any("Training started" in m for m in events) and any("Evaluation" in m for m in events)


def test_cancel_stops_a_running_job_at_its_next_step(api, headers, e2e_settings, start_worker) -> None:
    from tests.e2e.conftest import wait_for

    start_worker()
    job = submit(api, headers, e2e_settings, max_steps=5000, checkpoint_every=1000)
    wait_for(job_state(api, headers, job["id"]), lambda j: j["progress"]["step"] >= 3, 120, "a running job")
    response = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200 and response.json()["status"] in ("cancel_requested", "cancelled")
    done = wait_for(
        job_state(api, headers, job["id"]), lambda j: j["status"] == "cancelled", 60, "cancellation"
    )
    assert done["progress"]["step"] < 5000 and done["fine_tuned_model"] is None
    checkpoints = api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", headers=headers).json()["data"]
    assert [c["step_number"] for c in checkpoints] == [done["progress"]["step"]]  # saved on the way out


def test_a_killed_worker_loses_only_the_steps_since_the_last_checkpoint(
    api, headers, e2e_settings, start_worker
) -> None:
    from tests.e2e.conftest import wait_for

    first = start_worker()
    job = submit(api, headers, e2e_settings, max_steps=400, checkpoint_every=10)
    state = job_state(api, headers, job["id"])
    running = wait_for(state, lambda j: j["progress"]["step"] >= 25, 120, "progress past two checkpoints")
    first.kill()  # SIGKILL: no clean-up, the lease just stops being renewed
    killed_at = running["progress"]["step"]
    start_worker()
    done = wait_for(state, lambda j: j["status"] in ("succeeded", "failed"), 240, "the resumed job")
    assert done["status"] == "succeeded", done
    events = all_events(api, headers, job["id"])
    resumed = [e for e in events if e["message"].startswith("Training resumed")]
    assert len(resumed) == 1
    step = resumed[0]["data"]["step"]
    assert step % 10 == 0 and killed_at - 10 <= step <= killed_at + 10
    metrics = api.get(f"/v1/fine_tuning/jobs/{job['id']}/metrics", headers=headers).json()
    assert metrics["steps"] == sorted(set(metrics["steps"])) and metrics["steps"][-1] == 400
