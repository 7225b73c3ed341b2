"""Tenants and their API keys. A key is shown once; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import ApiKey, Tenant

KEY_PREFIX = "mt-"
SHOWN_PREFIX_LENGTH = 11  # "mt-" and 8 characters: enough to tell keys apart in a listing


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is not None:
        return tenant
    tenant = Tenant(name=name)
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:  # created concurrently
        session.rollback()
        return session.scalars(select(Tenant).where(Tenant.name == name)).one()
    return tenant


def create_api_key(session: Session, tenant_id: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Store a new key for the tenant; returns the row and the plaintext key (not stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:SHOWN_PREFIX_LENGTH], name=name)
    session.add(row)
    session.commit()
    return row, key


def authenticate(session: Session, key: str) -> Tenant | None:
    """The tenant owning an unrevoked key, or None."""
    return session.scalar(
        select(Tenant)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False))
    )


def list_api_keys(session: Session, tenant_name: str | None = None) -> list[tuple[ApiKey, Tenant]]:
    stmt = select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).order_by(ApiKey.created_at)
    if tenant_name is not None:
        stmt = stmt.where(Tenant.name == tenant_name)
    return [(key, tenant) for key, tenant in session.execute(stmt)]


def revoke_api_key(session: Session, key_id: str) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is None:
        return None
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        session.commit()
    return row
