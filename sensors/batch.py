"""What the ingestor builds for one batch (the state it keeps per device, the events, dead
letters and unknown devices a batch will write, its counters) and the statements that
write it, built once per dialect and run through ManyRows (sensors.ingest runs them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.many_rows import ManyRows
from monitor.rules import day_marks
from monitor.rules.device_health import BATTERY_SILENCE
from monitor.rules.findings import NewEvent
from monitor.tables import DAY_MARKS, DEVICES, EVENTS
from sensors.readings import PayloadError, Reading


@dataclass
class DeviceState:
    resident_id: str
    kind: str
    light_threshold: float
    state: str | None
    battery: float | None
    online: bool | None
    last_seen: datetime | None
    state_at: datetime | None = None  # time of the reading that set `state`


@dataclass
class IngestStats:
    messages: int = 0
    readings: int = 0
    events: int = 0
    dead_letters: int = 0
    ignored: int = 0
    unknown: int = 0
    batches: int = 0
    redelivered: int = 0  # messages the broker marked as sent before (DUP)
    duplicates: int = 0  # timestamped readings already stored, recognised and skipped


# A stamped event's identity: (device id, ts in UTC, device kind, value).
Key = tuple[str, datetime, str, str]
# What `parse` made of one message: its readings, or why it is a dead letter, or None for a
# topic curtainwatch ignores.
Parsed = list[Reading] | PayloadError | None


@dataclass
class Batch:
    events: list[NewEvent] = field(default_factory=list)
    stamped: list[bool] = field(default_factory=list)  # per event: its time is the payload's
    stored_keys: set[Key] = field(default_factory=set)  # stamped events already stored
    moved: set[str] = field(default_factory=set)  # devices whose state (and its time) changed
    duplicates: int = 0
    devices: dict[str, DeviceState] = field(default_factory=dict)
    dead: list[dict[str, object]] = field(default_factory=list)
    unknown: dict[str, dict[str, object]] = field(default_factory=dict)
    readings: int = 0
    ignored: int = 0


EVENT_COLUMNS = ("resident_id", "device_id", "kind", "value", "ts", "received_at", "stamped")


def _insert_events(dialect: Any) -> Insert:
    """INSERT of events; a stamped event already stored is skipped, not an error (the
    batch checked first; this covers a writer the checks cannot see)."""
    stmt: Any = dialect.insert(EVENTS).values({c: bindparam(c) for c in EVENT_COLUMNS})
    return stmt.on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=["device_id", "ts", "kind", "value"], index_where=text("stamped")
    )


INSERT_EVENTS = ManyRows(
    {"sqlite": _insert_events(sqlite), "postgresql": _insert_events(postgresql)},
    EVENT_COLUMNS,
)
MARK_COLUMNS = ("resident_id", "day", *day_marks.COLUMNS)


def _merge_marks(dialect: Any) -> Insert:
    stmt: Any = dialect.insert(DAY_MARKS).values({c: bindparam(c) for c in MARK_COLUMNS})
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=["resident_id", "day"], set_=day_marks.merge(stmt.excluded)
    )


MERGE_MARKS = ManyRows(
    {"sqlite": _merge_marks(sqlite), "postgresql": _merge_marks(postgresql)}, MARK_COLUMNS
)
UPDATE_DEVICES = ManyRows(
    update(DEVICES)
    .where(DEVICES.c.id == bindparam("did"))
    .values(
        state=bindparam("s"),
        state_at=func.coalesce(bindparam("at", type_=DEVICES.c.state_at.type), DEVICES.c.state_at),
        last_seen=bindparam("seen"),
        battery=bindparam("b"),
        online=bindparam("on"),
        alive_until=bindparam("until"),
    ),
    ("did", "s", "at", "seen", "b", "on", "until"),
)
LOCK_DEVICES = (
    select(DEVICES)
    .where(DEVICES.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(DEVICES.c.id)
    .with_for_update()
)


def state_of(row: Any) -> DeviceState:
    return DeviceState(
        row.resident_id,
        row.kind,
        row.light_threshold,
        row.state,
        row.battery,
        row.online,
        row.last_seen,
        row.state_at,
    )


def alive_until(d: DeviceState) -> datetime | None:
    # Battery devices report at least daily; mains devices are judged by availability only.
    if d.battery is None or d.last_seen is None:
        return None
    return d.last_seen + BATTERY_SILENCE
