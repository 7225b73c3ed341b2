from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Generic, Literal, Self, TypeVar

from pydantic import BaseModel


class Identified(BaseModel):
    id: str


T = TypeVar("T", bound=Identified)


class ListEnvelope(BaseModel, Generic[T]):
    """OpenAI's cursor page: pass `last_id` as `after` for the next page while `has_more`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None
    last_id: str | None

    @classmethod
    def page(cls, data: Sequence[T], has_more: bool) -> Self:
        return cls(
            data=list(data),
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )


def unix(value: datetime) -> int:
    return int(value.timestamp())


def unix_or_none(value: datetime | None) -> int | None:
    return None if value is None else unix(value)
