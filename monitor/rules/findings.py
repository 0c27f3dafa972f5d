"""What the rules hand on: a Finding (raise or resolve an alert) to a FindingSink, which
alerts/ implements, so the engine never imports alerts; and the NewEvent the ingestor
hands the engine for each change it stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from monitor.messages import Message


@dataclass(frozen=True)
class Finding:
    """Something the rules found. `raise` opens (or repeats) the alert for (resident, cause);
    `resolve` closes an open one with `outcome`."""

    action: Literal["raise", "resolve"]
    kind: str  # missed_routine | help | inactivity | device_offline | low_battery
    resident_id: str
    cause: str
    at: datetime
    due: datetime | None = None
    routine_id: int | None = None
    routine_kind: str | None = None
    device_id: str | None = None
    outcome: str | None = None
    # Raise: the alert's detail. Resolve: the resolution's note (in English).
    detail: Message | None = None


class FindingSink(Protocol):
    def __call__(self, session: Session, findings: Sequence[Finding]) -> None: ...

    def raise_missed(self, session: Session, missed: Select[Any], at: datetime) -> None:
        """Raise the missed windows `missed` selects from settlements, as rows of (id,
        routine_id, resident_id, kind, due_at): in SQL, however many there are."""
        ...


@dataclass(frozen=True)
class NewEvent:
    """A change the ingestor just stored."""

    resident_id: str
    device_id: str
    kind: str
    value: str
    ts: datetime
    received_at: datetime


def routine_cause(routine_id: int) -> str:
    return f"routine:{routine_id}"
