from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import FileResponse

import db.files
from api.deps import CurrentTenant, PageAfter, PageLimit, SessionDep, SettingsDep, StorageDep
from api.errors import APIError, not_found
from api.schemas.files import FileDeleted, FileList, FilePublic, FilePurpose
from api.services.storage import UploadTooLarge
from db.base import new_id
from db.models import File

router = APIRouter(prefix="/files", tags=["files"])


def _tenant_file(session: SessionDep, tenant: CurrentTenant, file_id: str) -> File:
    file = db.files.get_file(session, tenant.id, file_id)
    if file is None:
        raise not_found("file", file_id)
    return file


@router.post("")
def create_file(
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    storage: StorageDep,
    file: UploadFile,
    purpose: Annotated[FilePurpose, Form()],
) -> FilePublic:
    """Upload a JSONL training or validation file (streamed to storage, hashed, written atomically)."""
    file_id = new_id("file")
    try:
        stored = storage.save(tenant.id, file_id, file.file, settings.max_upload_bytes)
    except UploadTooLarge as exc:
        message = f"File larger than the limit of {exc.limit} bytes"
        raise APIError(413, "file_too_large", message, "file") from None
    filename = PurePath(file.filename or "upload.jsonl").name[:255] or "upload.jsonl"
    try:
        row = db.files.create_file(
            session,
            file_id=file_id,
            tenant_id=tenant.id,
            filename=filename,
            size=stored.size,
            sha256=stored.sha256,
            purpose=purpose,
            storage_path=stored.path,
        )
    except BaseException:
        storage.delete(stored.path)  # no row, no bytes
        raise
    return FilePublic.from_row(row)


@router.get("")
def list_files(
    session: SessionDep,
    tenant: CurrentTenant,
    after: PageAfter = None,
    limit: PageLimit = 20,
    purpose: FilePurpose | None = None,
) -> FileList:
    cursor = None
    if after is not None:
        cursor = session.get(File, after)
        if cursor is None or cursor.tenant_id != tenant.id:
            raise not_found("file", after, "after")
    page = db.files.list_files(session, tenant.id, purpose=purpose, after=cursor, limit=limit)
    return FileList.page([FilePublic.from_row(row) for row in page.items], page.has_more)


@router.get("/{file_id}")
def read_file(session: SessionDep, tenant: CurrentTenant, file_id: str) -> FilePublic:
    return FilePublic.from_row(_tenant_file(session, tenant, file_id))


@router.delete("/{file_id}")
def delete_file(session: SessionDep, tenant: CurrentTenant, storage: StorageDep, file_id: str) -> FileDeleted:
    """Delete a file's bytes; refused while a job that has not finished reads it."""
    file = _tenant_file(session, tenant, file_id)
    if db.files.file_in_use(session, file.id):
        raise APIError(409, "file_in_use", f"File {file.id} is used by a job that has not finished")
    db.files.mark_deleted(session, file)
    storage.delete(file.storage_path)
    return FileDeleted(id=file.id, deleted=True)


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
def read_file_content(
    session: SessionDep, tenant: CurrentTenant, storage: StorageDep, file_id: str
) -> FileResponse:
    file = _tenant_file(session, tenant, file_id)
    return FileResponse(
        storage.resolve(file.storage_path), media_type="application/octet-stream", filename=file.filename
    )
