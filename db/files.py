"""Uploaded files. Deletion is soft: the row stays so that jobs keep their reference; the bytes go."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import TERMINAL_STATUSES, File, FileStatus, Job
from db.pagination import Page, keyset_page


def create_file(
    session: Session,
    *,
    file_id: str,
    tenant_id: str,
    filename: str,
    size: int,
    sha256: str,
    purpose: str,
    storage_path: str,
) -> File:
    row = File(
        id=file_id,
        tenant_id=tenant_id,
        filename=filename,
        bytes=size,
        sha256=sha256,
        purpose=purpose,
        storage_path=storage_path,
    )
    session.add(row)
    session.commit()
    return row


def get_file(session: Session, tenant_id: str, file_id: str) -> File | None:
    """The tenant's file, or None for unknown, deleted or other tenants' files."""
    return session.scalar(
        select(File).where(File.id == file_id, File.tenant_id == tenant_id, File.deleted_at.is_(None))
    )


def list_files(
    session: Session, tenant_id: str, *, purpose: str | None, after: File | None, limit: int
) -> Page[File]:
    stmt = select(File).where(File.tenant_id == tenant_id, File.deleted_at.is_(None))
    if purpose is not None:
        stmt = stmt.where(File.purpose == purpose)
    cursor = (after.created_at, after.id) if after is not None else None
    return keyset_page(session, stmt, (File.created_at, File.id), cursor, limit)


def file_in_use(session: Session, file_id: str) -> bool:
    """True while an unfinished job reads the file."""
    return (
        session.scalar(
            select(Job.id)
            .where(
                (Job.training_file_id == file_id) | (Job.validation_file_id == file_id),
                Job.status.not_in(list(TERMINAL_STATUSES)),
            )
            .limit(1)
        )
        is not None
    )


def mark_deleted(session: Session, file: File) -> None:
    file.deleted_at = utcnow()
    session.commit()


def set_validation_result(session: Session, file: File, ok: bool, details: str | None) -> None:
    """Cache the validator's verdict: a file is validated once, however many jobs use it."""
    file.status = FileStatus.PROCESSED if ok else FileStatus.ERROR
    file.status_details = None if ok else details
    session.commit()
