"""The today board: one tile per in-scope resident, coloured by how their day is going.

Two halves, kept apart so each can be tested alone:

- `tile_status(facts, now)`: a pure function from what is known about one resident (open
  alerts, away, dead sensors, windows that have begun without their event) to a Verdict:
  red (an alert someone must act on), grey (away, or a sensor problem makes today
  uncertain), amber (a window is open and its event has not come yet), green (otherwise).
- `compute_board(session, scope, now, zone)`: five set-based SELECTs over every resident
  in scope (residents joined with today's day marks and settlements, open alerts, away
  today, devices offline or with a door event today, windows still waiting), combined in
  Python. The statement count does not depend on how many residents there are.

Times on tiles are local "HH:MM" in the community's zone: curtain and light from today's
day marks (monitor.rules.day_marks: kept by the ingestor as it stores events), the door from its
device's last change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    DateTime,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from monitor.access import Scope
from monitor.models import (
    OPEN_STATUSES,
)
from monitor.rules import day_marks
from monitor.rules.device_health import NEVER_SEEN_GRACE, offline_rule
from monitor.rules.windows import local_instant
from monitor.tables import (
    ALERTS,
    AWAY_PERIODS,
    DAY_MARKS,
    DEVICES,
    EVENTS,
    PEOPLE,
    RESIDENTS,
    ROUTINES,
    SCHEDULES,
    SETTLEMENTS,
)

# Most urgent first: the order of the filter bar and of the counts.
STATUSES = ("red", "amber", "grey", "green")
# Alerts that make a tile red, most urgent first. Device alerts (device_offline,
# low_battery) do not: a dead sensor makes the day uncertain (grey), not alarming.
RED_KINDS = ("help", "missed_routine", "inactivity")
# Routines without a daily window: never "waiting".
UNWINDOWED = ("inactivity", "help")


# -- the pure half -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert not yet resolved. `routine_kind` for a missed routine; `claimed_by` is the
    claimer's name when claimed."""

    kind: str
    claimed: bool = False
    routine_kind: str | None = None
    claimed_by: str | None = None


class Window(NamedTuple):
    """A routine window that has begun (or will) with no matching event seen yet."""

    routine_kind: str
    opens_at: datetime
    due_at: datetime


# Not frozen: a frozen dataclass is ~5x slower to build, and a board builds thousands.
@dataclass(slots=True)
class Facts:
    """What the board knows about one resident at the time of its queries."""

    alerts: tuple[OpenAlert, ...] = ()
    away: bool = False
    offline_devices: tuple[str, ...] = ()  # device kinds that are offline or silent
    waiting: tuple[Window, ...] = ()


@dataclass(slots=True)
class Verdict:
    """A tile's colour and why. `reason`: alert | away | sensor | waiting | overdue | ok;
    `detail`: the alert kind (alert), or the routine kind (waiting / overdue); `alert`: the
    open alert that made it red."""

    status: str
    reason: str
    detail: str | None = None
    alert: OpenAlert | None = None


def tile_status(facts: Facts, now: datetime) -> Verdict:
    """The colour of one resident's tile at `now`:

    1. red: an open or claimed help / missed_routine / inactivity alert (the most urgent);
    2. grey: away today, or a device is offline, so today's windows cannot be judged;
    3. amber: a window has opened (opens_at <= now) and its event has not come; "overdue"
       once its due time has passed but the settle tick has not yet turned it into an alert;
    4. green: otherwise (every window so far satisfied, or none open yet)."""
    red = [a for a in facts.alerts if a.kind in RED_KINDS]
    if red:
        # Unclaimed before claimed: the one nobody has taken is the one to show.
        top = min(red, key=lambda a: (RED_KINDS.index(a.kind), a.claimed))
        return Verdict("red", "alert", top.kind, top)
    if facts.away:
        return Verdict("grey", "away")
    if facts.offline_devices:
        return Verdict("grey", "sensor")
    begun = [w for w in facts.waiting if w.opens_at <= now]
    if begun:
        first = min(begun, key=lambda w: w.due_at)
        return Verdict("amber", "overdue" if first.due_at <= now else "waiting", first.routine_kind)
    return Verdict("green", "ok")


# -- what the board shows ------------------------------------------------------------------


class Tile(NamedTuple):
    """One resident's tile. A NamedTuple rather than a frozen dataclass: a board makes
    10,000 of them per request, and a tuple is built ~5x faster and hashes (for the ETag)
    without extra code."""

    resident_id: str
    name: str
    building: str
    unit: str
    status: str
    reason: str
    detail: str | None  # alert kind or routine kind, see Verdict
    alert_kind: str | None  # the open alert shown (red), if any
    alert_routine: str | None  # the routine a missed_routine alert is about
    alert_claimed: bool
    claimed_by: str | None
    sensor_problem: bool  # a device is offline (shown even when the tile is red)
    curtain_opened: str | None  # "HH:MM": today's first curtain open
    curtain_closed: str | None  # today's last curtain close
    light_on: str | None  # today's first light on
    door: str | None  # today's last door event
    settled: int  # today's windows settled so far
    satisfied: int  # ... of which satisfied


@dataclass(frozen=True, slots=True)
class BuildingCount:
    building: str
    total: int
    statuses: dict[str, int] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Group:
    building: str
    tiles: tuple[Tile, ...]


@dataclass(frozen=True)
class Board:
    """Every in-scope resident's tile, ordered by building then unit (natural order)."""

    day: date
    now: datetime
    tiles: tuple[Tile, ...]

    def groups(self, building: str | None = None, status: str | None = None) -> list[Group]:
        """Tiles by building, optionally only one building and/or one status."""
        out: list[Group] = []
        current: list[Tile] = []
        for t in self.tiles:
            if (building is not None and t.building != building) or (
                status is not None and t.status != status
            ):
                continue
            if current and current[0].building != t.building:
                out.append(Group(current[0].building, tuple(current)))
                current = []
            current.append(t)
        if current:
            out.append(Group(current[0].building, tuple(current)))
        return out

    def status_counts(self, building: str | None = None) -> dict[str, int]:
        """How many tiles of each status (in `building`, or everywhere)."""
        if building is None:
            counts = Counter(t.status for t in self.tiles)
        else:
            counts = Counter(t.status for t in self.tiles if t.building == building)
        return {s: counts.get(s, 0) for s in STATUSES}

    def building_counts(self) -> list[BuildingCount]:
        """Per building (in board order), its residents and their statuses."""
        per = Counter((t.building, t.status) for t in self.tiles)
        buildings = dict.fromkeys(t.building for t in self.tiles)
        out = []
        for b in buildings:
            statuses = {s: per.get((b, s), 0) for s in STATUSES}
            out.append(BuildingCount(b, sum(statuses.values()), statuses))
        return out


# -- the queries ---------------------------------------------------------------------------


def compute_board(session: Session, scope: Scope, now: datetime, zone: ZoneInfo) -> Board:
    """The board at `now` for everyone `scope` may see; `zone` decides "today".

    Five statements: residents with today's marks and settlements (one row each),
    open alerts, away today, devices offline or with a door event today, windows still
    waiting. Only the first returns
    a row per resident; the others return rows only for residents with something to say."""
    today = now.astimezone(zone).date()
    midnight = local_instant(today, time(0), zone)
    people = session.execute(_residents(scope), {"today": today}).all()
    alerts: dict[str, list[OpenAlert]] = {}
    for rid, kind, status, routine_kind, claimer, claimed_by in session.execute(_alerts(scope)):
        alerts.setdefault(rid, []).append(
            OpenAlert(kind, status == "claimed", routine_kind, claimer or _actor(claimed_by))
        )
    away = set(session.scalars(_away(scope), {"today": today}))
    offline: dict[str, list[str]] = {}
    door: dict[str, datetime] = {}
    # Rows hold naive UTC; a reading may carry a time up to an hour ahead (a skewed sensor
    # clock): the board shows nothing later than now, as the waiting windows do.
    since, until = midnight.replace(tzinfo=None), now.astimezone(UTC).replace(tzinfo=None)
    for rid, kind, is_offline, changed in session.execute(
        _devices(scope), {"now": now, "stale": now - NEVER_SEEN_GRACE, "midnight": midnight}
    ):
        if is_offline:
            offline.setdefault(rid, []).append(kind)
        if kind == "door" and changed is not None and since <= changed <= until:
            door[rid] = max(changed, door.get(rid, changed))
    # Most waiting windows are shared (everyone's door window opens at 06:00): each distinct
    # window is built once, and each distinct set of them weighed once below.
    windows: dict[tuple[Any, ...], Window] = {}
    waiting: dict[str, list[Window]] = {}
    for rid, *raw in session.execute(_waiting(scope), {"now": now}).all():
        key = tuple(raw)
        window = windows.get(key)
        if window is None:
            kind, opens_at, due_at = raw
            window = windows[key] = Window(
                kind, opens_at.replace(tzinfo=UTC), due_at.replace(tzinfo=UTC)
            )
        waiting.setdefault(rid, []).append(window)

    hhmm = _local_hhmm(zone, midnight, now)
    green = tile_status(Facts(), now)
    only_waiting: dict[tuple[Window, ...], Verdict] = {}
    tiles = []
    for rid, name, building, unit, opened, closed, light, n, ok in _in_order(people):
        if rid in alerts or rid in away or rid in offline:
            facts = Facts(
                tuple(alerts.get(rid, ())),
                rid in away,
                tuple(offline.get(rid, ())),
                tuple(waiting.get(rid, ())),
            )
            verdict = tile_status(facts, now)
        elif rid in waiting:
            these = tuple(waiting[rid])
            verdict = only_waiting.get(these)  # type: ignore[assignment]
            if verdict is None:
                verdict = only_waiting[these] = tile_status(Facts(waiting=these), now)
        else:  # most residents, most of the day: nothing to weigh
            verdict = green
        shown = verdict.alert
        tiles.append(
            Tile(
                rid,
                name,
                building,
                unit,
                verdict.status,
                verdict.reason,
                verdict.detail,
                shown.kind if shown else None,
                shown.routine_kind if shown else None,
                shown.claimed if shown else False,
                shown.claimed_by if shown else None,
                rid in offline,
                hhmm(opened) if opened and opened <= until else None,
                hhmm(closed) if closed and closed <= until else None,
                hhmm(light) if light and light <= until else None,
                hhmm(door[rid]) if rid in door else None,
                n or 0,
                int(ok or 0),
            )
        )
    return Board(today, now, tuple(tiles))


def _residents(scope: Scope) -> Any:
    """Every active resident in scope with today's marks (day :today) and settlement counts,
    joined in SQL so Python sees one row each. Times as plain naive-UTC DateTimes: skipping
    UTCDateTime's Python-level hook is most of the cost of 30,000 values, and _local_hhmm
    knows they are UTC."""
    settled = _settled(scope).subquery()
    marks = RESIDENTS.outerjoin(
        DAY_MARKS,
        and_(
            DAY_MARKS.c.resident_id == RESIDENTS.c.id,
            DAY_MARKS.c.day == _param("today", DAY_MARKS.c.day),
        ),
    )
    return (
        select(
            RESIDENTS.c.id,
            RESIDENTS.c.name,
            RESIDENTS.c.building,
            RESIDENTS.c.unit,
            *(type_coerce(DAY_MARKS.c[c], DateTime()) for c in day_marks.COLUMNS),
            settled.c.n,
            settled.c.ok,
        )
        .select_from(marks.outerjoin(settled, settled.c.resident_id == RESIDENTS.c.id))
        .where(RESIDENTS.c.active, scope.residents(RESIDENTS.c.id))
    )


def _alerts(scope: Scope) -> Any:
    return (
        select(
            ALERTS.c.resident_id,
            ALERTS.c.kind,
            ALERTS.c.status,
            ROUTINES.c.kind,
            PEOPLE.c.name,
            ALERTS.c.claimed_by,
        )
        .select_from(
            ALERTS.outerjoin(ROUTINES, ROUTINES.c.id == ALERTS.c.routine_id).outerjoin(
                PEOPLE, PEOPLE.c.id == ALERTS.c.claimed_by
            )
        )
        .where(
            ALERTS.c.status.in_(OPEN_STATUSES),
            ALERTS.c.resident_id.is_not(None),
            scope.residents(ALERTS.c.resident_id),
        )
    )


def _away(scope: Scope) -> Any:
    return (
        select(AWAY_PERIODS.c.resident_id)
        .distinct()
        .where(
            AWAY_PERIODS.c.first_day <= _param("today", AWAY_PERIODS.c.first_day),
            AWAY_PERIODS.c.last_day >= _param("today", AWAY_PERIODS.c.last_day),
            scope.residents(AWAY_PERIODS.c.resident_id),
        )
    )


def _devices(scope: Scope) -> Any:
    """Devices offline at :now, by the same rule as the engine's device_offline alert
    (reported offline, silent past `alive_until`, or never heard from since :stale), and
    door devices that changed between :midnight and :now: each door event changes its
    door's state, so the last one's time is its state_at (if after the door last moved to
    its resident). Rows (resident, kind, offline?, state_at)."""
    now = _param("now", DEVICES.c.last_seen)
    offline = offline_rule(now, _param("stale", DEVICES.c.created_at))
    door_today = and_(
        DEVICES.c.kind == "door",
        DEVICES.c.state_at >= _param("midnight", DEVICES.c.state_at),
        DEVICES.c.state_at <= _param("now", DEVICES.c.state_at),
        or_(DEVICES.c.moved_at.is_(None), DEVICES.c.state_at >= DEVICES.c.moved_at),
    )
    return select(
        DEVICES.c.resident_id, DEVICES.c.kind, offline, type_coerce(DEVICES.c.state_at, DateTime())
    ).where(or_(offline, door_today), scope.residents(DEVICES.c.resident_id))


def _waiting(scope: Scope) -> Any:
    """Windows that have begun (their window_start_at is past) with no matching event in
    them yet: the routine's current window (its schedule's), whatever its date, so a
    window that crosses midnight still counts, and one overdue but not yet settled stays
    visible."""
    now = _param("now", SCHEDULES.c.window_start_at)
    matched = exists().where(
        EVENTS.c.resident_id == ROUTINES.c.resident_id,
        EVENTS.c.ts >= SCHEDULES.c.window_start_at,
        EVENTS.c.ts < SCHEDULES.c.next_due_at,
        EVENTS.c.ts <= now,
        or_(ROUTINES.c.match_kind.is_(None), EVENTS.c.kind == ROUTINES.c.match_kind),
        or_(ROUTINES.c.match_value.is_(None), EVENTS.c.value == ROUTINES.c.match_value),
    )
    return (
        select(
            ROUTINES.c.resident_id,
            ROUTINES.c.kind,
            # Plain DateTime (naive UTC, made aware by the caller): UTCDateTime's Python-level
            # hook costs more than the rest of a row, and there can be a row per resident.
            type_coerce(SCHEDULES.c.window_start_at, DateTime()),
            type_coerce(SCHEDULES.c.next_due_at, DateTime()),
        )
        .select_from(ROUTINES.join(SCHEDULES, SCHEDULES.c.id == ROUTINES.c.schedule_id))
        .where(
            ROUTINES.c.active,
            ROUTINES.c.kind.not_in(UNWINDOWED),
            SCHEDULES.c.window_start_at <= now,
            ~matched,
            scope.residents(ROUTINES.c.resident_id),
        )
    )


def _settled(scope: Scope) -> Any:
    """Per resident, the windows of today settled so far and how many were satisfied: the
    day's stretch of the settlements key (window_date first), not the history behind it.
    Inactivity is not a window that can pass, so it is not counted."""
    return (
        select(
            SETTLEMENTS.c.resident_id,
            func.count().label("n"),
            func.sum(case((SETTLEMENTS.c.outcome == "satisfied", 1), else_=0)).label("ok"),
        )
        .where(
            SETTLEMENTS.c.window_date == _param("today", SETTLEMENTS.c.window_date),
            SETTLEMENTS.c.kind.not_in(UNWINDOWED),
            scope.residents(SETTLEMENTS.c.resident_id),
        )
        .group_by(SETTLEMENTS.c.resident_id)
    )


def _param(name: str, like: Any) -> Any:
    return bindparam(name, type_=like.type)


def _actor(claimed_by: str | None) -> str | None:
    """A claimer with no Person row is a web user, recorded as "user:<name>"."""
    if claimed_by is None:
        return None
    return claimed_by.removeprefix("user:")


def _local_hhmm(zone: ZoneInfo, start: datetime, end: datetime) -> Callable[[datetime], str]:
    """A function from naive UTC datetimes between `start` and `end` to local "HH:MM". On
    the 364 days a year when the zone's offset (whole minutes) does not change in between,
    it only shifts the UTC minute of the day and looks the label up (a board formats
    ~15,000 times)."""
    offset = start.astimezone(zone).utcoffset()
    if (
        offset is not None
        and offset == end.astimezone(zone).utcoffset()
        and not offset.seconds % 60
    ):
        shift = int(offset.total_seconds()) // 60

        def shifted(ts: datetime) -> str:
            return _LABELS[(ts.hour * 60 + ts.minute + shift) % 1440]

        return shifted

    def converted(ts: datetime) -> str:
        local = ts.replace(tzinfo=UTC).astimezone(zone)
        return f"{local.hour:02d}:{local.minute:02d}"

    return converted


_LABELS = [f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)]
_PARTS = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[Any, ...]:
    """A sort key putting "2" before "10" and "3A" after "3" (ints never meet strings)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _PARTS.split(text) if p)


def _in_order(rows: Sequence[Any]) -> list[Any]:
    """Resident rows (id, name, building, unit, ...) by building, unit (natural order), then
    name: each distinct building and unit is ranked once, not compared per row."""
    buildings = {r[2] for r in rows}
    units = {r[3] for r in rows}
    b_rank = {b: i for i, b in enumerate(sorted(buildings, key=_natural))}
    u_rank = {u: i for i, u in enumerate(sorted(units, key=_natural))}
    return sorted(rows, key=lambda r: (b_rank[r[2]], u_rank[r[3]], r[1], r[0]))
