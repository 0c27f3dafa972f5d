"""Day marks: the board's times of each resident's day, kept as events are stored.

A mark is, per resident and local day (the community's zone), the first curtain open, the
last curtain close and the first light on. `marks_of` folds stored events into marks
(pure); the ingestor writes them in the transaction that stores the events, merged with
what is there as earliest / latest (`merge`), so a batch's order, a redelivery or a second
instance cannot make a mark wrong. `rebuild` recomputes marks from the events table, in one
transaction: after the community's zone changes (the importer), and for data written
around the ingestor (the board benchmark).

The last door event needs no mark: every door event changes its device's state, so the
device's `state_at` already is it (and doors move far more often than curtains and
lights, so a mark would cost the ingestor a write for most of its events).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, delete, insert, select
from sqlalchemy.orm import Session

from monitor.models import Community
from monitor.rules.windows import local_instant
from monitor.tables import DAY_MARKS, EVENTS

DEFAULT_ZONE = "Asia/Shanghai"

# The mark each event feeds: (event kind, value) -> (column, keep the latest, else earliest)
FEEDS: dict[tuple[str, str | None], tuple[str, bool]] = {
    ("curtain", "open"): ("curtain_opened", False),
    ("curtain", "closed"): ("curtain_closed", True),
    ("light", "on"): ("light_on", False),
}
COLUMNS = ("curtain_opened", "curtain_closed", "light_on")
LATEST = frozenset(column for column, latest in FEEDS.values() if latest)
KINDS = frozenset(kind for kind, _ in FEEDS)


class Marking(Protocol):
    """What a mark needs of a stored event (monitor.rules.findings.NewEvent has it)."""

    @property
    def resident_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def ts(self) -> datetime: ...


class Stored(NamedTuple):
    resident_id: str
    kind: str
    value: str
    ts: datetime


def marks_of(events: Iterable[Marking], zone: ZoneInfo) -> list[dict[str, Any]]:
    """One row per (resident, local day) the events touch, with the earliest / latest time
    of each mark among them (None where they say nothing)."""
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    for e in events:
        target = FEEDS.get((e.kind, e.value))
        if target is None:
            continue
        column, latest = target
        day = e.ts.astimezone(zone).date()
        row = rows.get((e.resident_id, day))
        if row is None:
            row = rows[(e.resident_id, day)] = dict.fromkeys(COLUMNS)
            row["resident_id"], row["day"] = e.resident_id, day
        old = row[column]
        if old is None or (e.ts > old if latest else e.ts < old):
            row[column] = e.ts
    return list(rows.values())


def merge(excluded: Any) -> dict[str, Any]:
    """ON CONFLICT: each mark becomes the earlier (or later) of the stored and the new."""
    out = {}
    for column in COLUMNS:
        old, new = DAY_MARKS.c[column], excluded[column]
        better = new > old if column in LATEST else new < old
        out[column] = case((old.is_(None), new), (new.is_not(None) & better, new), else_=old)
    return out


def community_zone(session: Session | Connection) -> ZoneInfo:
    """The zone whose days the marks follow: the community's (as the board's)."""
    name = session.scalar(select(Community.timezone).limit(1))
    return ZoneInfo(name or DEFAULT_ZONE)


def rebuild(session: Session | Connection, since: datetime) -> int:
    """Recompute the marks of every day from `since`'s on, from the events table. Returns
    the number of rows written."""
    zone = community_zone(session)
    first_day = since.astimezone(zone).date()
    start = local_instant(first_day, time(0), zone)
    session.execute(delete(DAY_MARKS).where(DAY_MARKS.c.day >= first_day))
    rows = marks_of(
        (
            Stored(*row)
            for row in session.execute(
                select(EVENTS.c.resident_id, EVENTS.c.kind, EVENTS.c.value, EVENTS.c.ts).where(
                    EVENTS.c.ts >= start, EVENTS.c.kind.in_(KINDS)
                )
            )
        ),
        zone,
    )
    for i in range(0, len(rows), 5000):
        session.execute(insert(DAY_MARKS), rows[i : i + 5000])
    return len(rows)
