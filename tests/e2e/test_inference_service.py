"""Inference through the API with the stock `openai` client: a real inference server process
serves an adapter trained by a real worker in the test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from api.main import create_app
from api.settings import Settings
from cli.keys import create_key
from tests.e2e.conftest import ROOT, settings_env, wait_for
from tests.e2e.test_training_service import job_state, submit

pytestmark = pytest.mark.slow
QUESTION = [{"role": "user", "content": "Is the movie great? (3)"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An inference server process, and the settings that point the API at it."""
    port = free_port()
    settings = e2e_settings.model_copy(update={"inference_url": f"http://127.0.0.1:{port}"})
    log = tmp_path_factory.mktemp("inference") / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "worker.inference.server:create_inference_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=settings_env(settings), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{settings.inference_url}/healthz", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"inference server did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.3)
    yield settings
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def trained(served: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A job trained by a real worker; the API app pointed at the inference server."""
    from tests.e2e.conftest import Worker

    worker = Worker(served, tmp_path_factory.mktemp("w") / "worker.log")
    key = create_key(f"inf-{time.monotonic_ns()}", served)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(served)) as api:
        job = submit(api, headers, served, max_steps=20, checkpoint_every=10)
        done = wait_for(job_state(api, headers, job["id"]), lambda j: j["status"] in ("succeeded", "failed"), 180,
                        "training")  # fmt: skip
        worker.stop()
        assert done["status"] == "succeeded", done
        yield {
            "api": api,
            "key": key,
            "model": done["fine_tuned_model"],
            "job": done["id"],
            "base": served.base_models[0],
        }


def client_for(trained: dict[str, object], key: str | None = None) -> OpenAI:
    return OpenAI(
        base_url="http://testserver/v1", api_key=key or str(trained["key"]), http_client=trained["api"]
    )  # type: ignore[arg-type]


def test_adapter_answers_differ_from_the_base_and_streaming_matches(trained) -> None:
    client = client_for(trained)
    tuned = client.chat.completions.create(
        model=trained["model"], messages=QUESTION, max_tokens=6, temperature=0
    )
    base = client.chat.completions.create(
        model=trained["base"], messages=QUESTION, max_tokens=6, temperature=0
    )
    assert tuned.object == "chat.completion" and tuned.model == trained["model"]
    assert tuned.usage.completion_tokens >= 1 and tuned.usage.prompt_tokens > 5
    assert tuned.choices[0].message.content != base.choices[0].message.content
    stream = client.chat.completions.create(model=trained["model"], messages=QUESTION, max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == tuned.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        tuned.choices[0].finish_reason
    ]
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == tuned.usage.completion_tokens
    )


def test_sampling_is_reproducible_with_a_seed(trained) -> None:
    client = client_for(trained)
    runs = [client.chat.completions.create(model=trained["model"], messages=QUESTION, max_tokens=8, temperature=1.5,
                                           seed=seed).choices[0].message.content for seed in (7, 7, 8)]  # fmt: skip
    assert runs[0] == runs[1]


def test_models_list_checkpoints_and_routing(trained) -> None:
    client = client_for(trained)
    assert trained["model"] in [m.id for m in client.models.list()]
    checkpoint = f"{trained['model']}:ckpt-step-10"
    answer = client.chat.completions.create(model=checkpoint, messages=QUESTION, max_tokens=3, temperature=0,
                                            extra_body={"return_routing": "all"})  # fmt: skip
    routing = answer.choices[0].model_extra["routing"]
    assert len(routing) == answer.usage.completion_tokens
    first = next(iter(routing[0].values()))
    assert len(first["experts"]) == 2 and abs(sum(first["gates"]) - 1) < 1e-5


def test_another_tenant_cannot_use_the_adapter_and_bad_input_is_400(trained, e2e_settings) -> None:
    other = client_for(trained, create_key(f"other-{time.monotonic_ns()}", e2e_settings))
    with pytest.raises(openai.NotFoundError) as info:
        other.chat.completions.create(model=trained["model"], messages=QUESTION, max_tokens=3)
    assert info.value.body["param"] == "model"
    client = client_for(trained)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=trained["model"], messages=QUESTION, temperature=5)
    assert bad.value.body["param"] == "temperature"
    completion = client.completions.create(
        model=trained["model"], prompt="Is the movie great?", max_tokens=4, temperature=0
    )
    assert completion.object == "text_completion" and completion.choices[0].finish_reason in (
        "stop",
        "length",
    )


def test_api_stays_responsive_while_generating(trained) -> None:
    import threading

    client = client_for(trained)
    api: TestClient = trained["api"]  # type: ignore[assignment]
    done = threading.Event()

    def long_generation() -> None:
        client.chat.completions.create(
            model=trained["model"], messages=QUESTION, max_tokens=200, temperature=1, seed=1
        )
        done.set()

    thread = threading.Thread(target=long_generation)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    response = api.get(
        f"/v1/fine_tuning/jobs/{trained['job']}", headers={"Authorization": f"Bearer {trained['key']}"}
    )
    assert response.status_code == 200 and time.monotonic() - started < 2.0
    thread.join(timeout=120)
    assert done.is_set()


def test_metrics_export_the_adapter_cache_counters(trained) -> None:
    client = client_for(trained)
    client.chat.completions.create(model=trained["model"], messages=QUESTION, max_tokens=2, temperature=0)
    text = trained["api"].get("/metrics").text  # type: ignore[attr-defined]
    hits = [line for line in text.splitlines() if line.startswith("moetune_adapter_cache_hits_total{")]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) >= 1
    assert "moetune_adapter_cache_evictions_total" in text and "moetune_inference_requests_total" in text
