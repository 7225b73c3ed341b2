from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from api.services.storage import CHUNK_BYTES, FileStorage, UploadTooLarge


def test_save_streams_in_chunks_hashes_and_renames_into_place(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    content = b"0123456789" * (CHUNK_BYTES // 4)  # several chunks

    stored = storage.save("org-1", "file-1", io.BytesIO(content), max_bytes=len(content))

    assert stored.path == "files/org-1/file-1" and stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert storage.resolve(stored.path).read_bytes() == content
    assert list((tmp_path / "tmp").iterdir()) == []


def test_save_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)

    with pytest.raises(UploadTooLarge):
        storage.save("org-1", "file-1", io.BytesIO(b"x" * (CHUNK_BYTES + 10)), max_bytes=CHUNK_BYTES)

    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_resolve_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        FileStorage(tmp_path).resolve("../etc/passwd")
