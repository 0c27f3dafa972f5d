"""One page of a long list, as every paginated page shows it (audit log, devices, people,
residents, alert history): its rows, how many there are in all, and where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(session: Session, query: Select[Any], page: int, per_page: int) -> Page[Any]:
    """Page `page` (from 1; anything lower is 1) of what `query` selects, in its order, with
    the count of all it selects: two queries whatever the size."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = max(1, page)
    rows = list(session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    return Page(rows, total or 0, page, per_page)
