"""Keyset pagination, newest first: a page is the rows strictly after a cursor row in sort order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def keyset_page(
    session: Session,
    stmt: Select[T],
    keys: Sequence[InstrumentedAttribute[Any]],
    cursor: Sequence[Any] | None,
    limit: int,
) -> Page[T]:
    """Rows of `stmt` in descending `keys` order, after the row whose key values are `cursor`."""
    if cursor is not None:
        stmt = stmt.where(_before(keys, cursor))
    stmt = stmt.order_by(*(key.desc() for key in keys)).limit(limit + 1)
    rows = list(session.scalars(stmt))
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def _before(keys: Sequence[InstrumentedAttribute[Any]], cursor: Sequence[Any]) -> ColumnElement[bool]:
    """(k0, k1, ...) < (c0, c1, ...) lexicographically, spelled out for every backend."""
    terms = []
    for i, key in enumerate(keys):
        equal = [keys[j] == cursor[j] for j in range(i)]
        terms.append(and_(*equal, key < cursor[i]))
    return or_(*terms)
