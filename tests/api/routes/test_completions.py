"""Completions routes without an inference server: model resolution, validation, and a clear 503.

Generation itself is tested end to end against a real inference server in tests/e2e."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import Caller, assert_error, new_caller

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def offline(settings: Settings) -> TestClient:
    """The app pointed at a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TestClient(
        create_app(settings.model_copy(update={"inference_url": f"http://127.0.0.1:{port}"}))
    ) as client:
        yield client


@pytest.fixture
def me(settings: Settings) -> Caller:
    return new_caller(settings)


def test_unknown_or_foreign_model_is_404_naming_model(offline: TestClient, me: Caller) -> None:
    body = {"model": "ft:smollm2-135m-instruct::ftjob-nope", "messages": MESSAGES}
    assert_error(
        offline.post("/v1/chat/completions", headers=me.headers, json=body), 404, "model_not_found", "model"
    )
    body = {"model": "ft:x::ftjob-nope:ckpt-step-3", "prompt": "hi"}
    assert_error(
        offline.post("/v1/completions", headers=me.headers, json=body), 404, "model_not_found", "model"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 3),
        ("top_p", 0),
        ("n", 9),
        ("max_tokens", 0),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("messages", []),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(
    offline: TestClient, me: Caller, field: str, value: object
) -> None:
    body = {"model": "smollm2-135m-instruct", "messages": MESSAGES, field: value}
    error = assert_error(offline.post("/v1/chat/completions", headers=me.headers, json=body), 400)
    assert error["param"] is not None and field in error["param"]


def test_base_model_without_an_inference_server_is_503(offline: TestClient, me: Caller) -> None:
    body = {"model": "smollm2-135m-instruct", "messages": MESSAGES}
    assert_error(
        offline.post("/v1/chat/completions", headers=me.headers, json=body), 503, "inference_unavailable"
    )
    assert_error(offline.post("/v1/chat/completions", headers=me.headers, json=body | {"stream": True}), 503)


def test_completions_need_an_api_key(offline: TestClient) -> None:
    assert_error(offline.post("/v1/chat/completions", json={"model": "x", "messages": MESSAGES}), 401)
