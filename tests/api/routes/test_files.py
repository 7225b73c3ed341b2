from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
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
    new_caller,
    upload,
)


def test_upload_file_returns_openai_file_object_with_size_and_sha256(
    client: TestClient, caller: Caller, settings: Settings
) -> None:
    content = jsonl(PROMPT_COMPLETION)

    body = upload(client, caller, content, "math.jsonl")

    assert body["id"].startswith("file-")
    assert body["object"] == "file"
    assert body["bytes"] == len(content)
    assert body["filename"] == "math.jsonl"
    assert body["purpose"] == "fine-tune"
    assert body["status"] == "uploaded"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert isinstance(body["created_at"], int)
    stored = list(Path(settings.storage_dir).rglob(body["id"]))
    assert len(stored) == 1 and stored[0].read_bytes() == content
    assert not list((Path(settings.storage_dir) / "tmp").iterdir())  # the temp file was renamed


def test_upload_file_keeps_only_the_base_name_of_the_filename(client: TestClient, caller: Caller) -> None:
    body = upload(client, caller, jsonl(PROMPT_COMPLETION), "../../etc/train.jsonl")

    assert body["filename"] == "train.jsonl"


def test_upload_file_with_other_purpose_is_rejected_naming_purpose(
    client: TestClient, caller: Caller
) -> None:
    response = client.post(
        "/v1/files", headers=caller.headers, files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"}
    )

    assert_error(response, 400, "invalid_request_error", "purpose")


def test_upload_file_without_file_is_rejected_naming_file(client: TestClient, caller: Caller) -> None:
    response = client.post("/v1/files", headers=caller.headers, data={"purpose": "fine-tune"})

    assert_error(response, 400, "invalid_request_error", "file")


def test_read_file_and_its_content(client: TestClient, caller: Caller) -> None:
    content = jsonl(PROMPT_COMPLETION)
    file_id = upload(client, caller, content)["id"]

    read = client.get(f"/v1/files/{file_id}", headers=caller.headers)
    raw = client.get(f"/v1/files/{file_id}/content", headers=caller.headers)

    assert read.status_code == 200 and read.json()["id"] == file_id
    assert raw.status_code == 200 and raw.content == content


def test_list_files_pages_newest_first_with_cursor(client: TestClient, caller: Caller) -> None:
    ids = [upload(client, caller, jsonl(PROMPT_COMPLETION), f"f{i}.jsonl")["id"] for i in range(3)]

    first = client.get("/v1/files", headers=caller.headers, params={"limit": 2}).json()
    second = client.get(
        "/v1/files", headers=caller.headers, params={"limit": 2, "after": first["last_id"]}
    ).json()

    assert first["object"] == "list"
    assert [f["id"] for f in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    assert first["first_id"] == ids[2] and first["last_id"] == ids[1]
    assert [f["id"] for f in second["data"]] == [ids[0]]
    assert second["has_more"] is False


def test_list_files_rejects_a_limit_out_of_range_naming_limit(client: TestClient, caller: Caller) -> None:
    response = client.get("/v1/files", headers=caller.headers, params={"limit": 0})

    assert_error(response, 400, "invalid_request_error", "limit")


def test_delete_file_removes_it_and_its_bytes(client: TestClient, caller: Caller, settings: Settings) -> None:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]

    response = client.delete(f"/v1/files/{file_id}", headers=caller.headers)

    assert response.status_code == 200
    assert response.json() == {"id": file_id, "object": "file", "deleted": True}
    assert_error(client.get(f"/v1/files/{file_id}", headers=caller.headers), 404, "not_found")
    assert file_id not in [f["id"] for f in client.get("/v1/files", headers=caller.headers).json()["data"]]
    assert not list(Path(settings.storage_dir).rglob(file_id))


def test_delete_file_used_by_a_queued_job_is_a_conflict(client: TestClient, caller: Caller) -> None:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]
    create_job(client, caller, file_id)

    response = client.delete(f"/v1/files/{file_id}", headers=caller.headers)

    assert_error(response, 409, "file_in_use")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/files/{id}"), ("GET", "/v1/files/{id}/content"), ("DELETE", "/v1/files/{id}")],
)
def test_other_tenants_file_is_not_found(
    client: TestClient, caller: Caller, other_caller: Caller, method: str, path: str
) -> None:
    file_id = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]

    response = client.request(method, path.format(id=file_id), headers=other_caller.headers)

    assert_error(response, 404, "not_found")
    assert client.get(f"/v1/files/{file_id}", headers=caller.headers).status_code == 200


def test_list_files_shows_only_the_callers_files(
    client: TestClient, caller: Caller, other_caller: Caller
) -> None:
    mine = upload(client, caller, jsonl(PROMPT_COMPLETION))["id"]

    theirs = client.get("/v1/files", headers=other_caller.headers).json()

    assert mine not in [f["id"] for f in theirs["data"]]
    assert_error(
        client.get("/v1/files", headers=other_caller.headers, params={"after": mine}), 404, param="after"
    )


LIMIT = 1000


@dataclass
class SmallUploads:
    client: TestClient
    settings: Settings


@pytest.fixture(scope="module")
def small_uploads(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallUploads]:
    """An app accepting files of at most `LIMIT` bytes."""
    settings = make_settings(backend.url, tmp_path_factory.mktemp("small"), max_upload_bytes=LIMIT)
    with TestClient(create_app(settings)) as test_client:
        yield SmallUploads(test_client, settings)


@pytest.mark.parametrize(
    ("size", "code"),
    [(LIMIT + 1, "file_too_large"), (200 * LIMIT, "request_too_large")],
    ids=["file-over-limit", "body-over-limit"],
)
def test_upload_file_over_the_limit_is_413_and_stores_nothing(
    small_uploads: SmallUploads, size: int, code: str
) -> None:
    caller = new_caller(small_uploads.settings)

    response = small_uploads.client.post(
        "/v1/files",
        headers=caller.headers,
        files={"file": ("big.jsonl", b"x" * size)},
        data={"purpose": "fine-tune"},
    )

    assert_error(response, 413, code)
    assert small_uploads.client.get("/v1/files", headers=caller.headers).json()["data"] == []
    assert not [p for p in Path(small_uploads.settings.storage_dir).rglob("*") if p.is_file()]


def test_upload_file_at_the_limit_is_accepted(small_uploads: SmallUploads) -> None:
    body = upload(small_uploads.client, new_caller(small_uploads.settings), b"x" * LIMIT)

    assert body["bytes"] == LIMIT
