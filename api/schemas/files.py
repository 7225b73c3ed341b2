from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel

from api.schemas.common import Identified, ListEnvelope, unix
from db.models import File

FilePurpose = Literal["fine-tune"]


class FilePublic(Identified):
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None = None
    sha256: str

    @classmethod
    def from_row(cls, row: File) -> Self:
        return cls(
            id=row.id,
            bytes=row.bytes,
            created_at=unix(row.created_at),
            filename=row.filename,
            purpose=row.purpose,
            status=row.status,  # type: ignore[arg-type]  # FileStatus values, checked by pydantic
            status_details=row.status_details,
            sha256=row.sha256,
        )


class FileList(ListEnvelope[FilePublic]):
    pass


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
