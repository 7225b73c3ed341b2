"""Uploaded files on disk under `Settings.storage_dir`, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK_BYTES = 1 * 2**20


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"file larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the storage root
    size: int
    sha256: str


class FileStorage:
    """Files live at `<root>/files/<tenant>/<file-id>`; the database stores the relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._tmp = self.root / "tmp"

    def resolve(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"{relative!r} is outside the storage root")
        return path

    def save(self, tenant_id: str, file_id: str, source: IO[bytes], max_bytes: int) -> StoredFile:
        """Copy `source` in chunks, hashing as it goes; raise `UploadTooLarge` past `max_bytes`."""
        relative = f"files/{tenant_id}/{file_id}"
        digest = hashlib.sha256()
        size = 0
        with self._atomic(self.resolve(relative)) as out:
            while chunk := source.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
        return StoredFile(path=relative, size=size, sha256=digest.hexdigest())

    def delete(self, relative: str) -> None:
        self.resolve(relative).unlink(missing_ok=True)

    @contextmanager
    def _atomic(self, final: Path) -> Iterator[IO[bytes]]:
        """Readers see the whole file or none of it; a failed write leaves no trace."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)  # make the rename itself durable
        finally:
            tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
