from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from cli.keys import create_key, main
from db.tenants import KEY_PREFIX, authenticate, hash_key, list_api_keys
from tests.api.conftest import Backend, make_settings


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(
    backend: Backend, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", "--tenant", "acme-cli", "--name", "laptop"], settings) == 0

    key = capsys.readouterr().out.strip()
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    with backend.session_factory() as session:
        tenant = authenticate(session, key)
        assert tenant is not None and tenant.name == "acme-cli"
        rows = [row for row, _ in list_api_keys(session, "acme-cli")]
        assert all(row.key_hash != key for row in rows)
        assert hash_key(key) in [row.key_hash for row in rows]
        assert key[:11] in [row.prefix for row in rows]


def test_keys_create_twice_gives_two_keys_of_one_tenant(backend: Backend, settings: Settings) -> None:
    first, second = create_key("twice", settings), create_key("twice", settings)

    with backend.session_factory() as session:
        one, two = authenticate(session, first), authenticate(session, second)
    assert first != second and one is not None and two is not None and one.id == two.id


def test_keys_list_and_revoke(
    settings: Settings, capsys: pytest.CaptureFixture[str], client: TestClient
) -> None:
    key = create_key("revokable", settings)
    main(["list", "--tenant", "revokable"], settings)
    listing = capsys.readouterr().out
    key_id = listing.split("\t")[0]

    assert key not in listing and key[:11] in listing and "active" in listing
    assert main(["revoke", key_id], settings) == 0
    assert main(["revoke", "key-unknown"], settings) == 1
    assert client.get("/v1/files", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_keys_create_on_a_new_embedded_database_migrates_it_first(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path, auto_migrate=True)

    assert create_key("first", settings).startswith(KEY_PREFIX)


def test_keys_create_needs_a_tenant(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "--tenant", "  "], settings) == 2
    assert "tenant" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["create"], settings)


def test_building_the_keys_parser_does_not_import_the_storage_stack() -> None:
    code = (
        "import argparse, sys\n"
        "from cli.keys import add_arguments\n"
        "add_arguments(argparse.ArgumentParser())\n"
        "assert 'sqlalchemy' not in sys.modules and 'pydantic_settings' not in sys.modules\n"
    )
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)

    assert result.returncode == 0, result.stderr
