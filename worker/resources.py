"""Per-process resources of a worker: the database session factory (one engine per process)."""

from __future__ import annotations

from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from db.session import make_engine, make_session_factory


@cache
def _factory(url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(url))


def session_factory(settings: Settings) -> sessionmaker[Session]:
    return _factory(settings.database_url)
