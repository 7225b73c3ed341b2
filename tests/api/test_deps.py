"""Bearer API keys: every `/v1` route needs one."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from cli.keys import main as keys_main
from tests.api.conftest import Backend, Caller, assert_error

V1_ROUTES = [
    ("GET", "/v1/files"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files/file-x"),
    ("DELETE", "/v1/files/file-x"),
    ("GET", "/v1/files/file-x/content"),
    ("GET", "/v1/fine_tuning/jobs"),
    ("POST", "/v1/fine_tuning/jobs"),
    ("GET", "/v1/fine_tuning/jobs/ftjob-x"),
    ("POST", "/v1/fine_tuning/jobs/ftjob-x/cancel"),
    ("GET", "/v1/fine_tuning/jobs/ftjob-x/events"),
    ("GET", "/v1/fine_tuning/jobs/ftjob-x/checkpoints"),
    ("GET", "/v1/fine_tuning/jobs/ftjob-x/metrics"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
def test_request_without_a_key_is_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)

    assert_error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


def test_request_with_an_unknown_key_is_401(client: TestClient) -> None:
    response = client.get("/v1/files", headers={"Authorization": "Bearer mt-not-a-key"})

    assert_error(response, 401, "invalid_api_key")


def test_request_with_a_revoked_key_is_401(
    client: TestClient,
    caller: Caller,
    backend: Backend,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert client.get("/v1/files", headers=caller.headers).status_code == 200
    keys_main(["list", "--tenant", caller.tenant], settings)
    key_id = capsys.readouterr().out.split("\t")[0]

    assert keys_main(["revoke", key_id], settings) == 0

    assert_error(client.get("/v1/files", headers=caller.headers), 401, "invalid_api_key")
