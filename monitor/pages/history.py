"""What the resident pages show, read set-based: the list of residents in scope, and for one
resident their devices' health, routines with today's outcome, away periods, today's
timeline (events, settled windows and alerts interleaved) and the 30-day series (first
curtain opening, last closing, first light and alerts per local day) with the usual
opening time.

Days are the resident's local dates: events are read for a UTC span in one query (index
ix_events_resident_probe) and grouped by `ts.astimezone(zone).date()` in Python, so a DST day
of 23 or 25 hours is one day and a 07:30 opening stays 07:30 on both sides of the change.
A time of day is minutes after local midnight. Plain reads over a Session; no Flask."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.access import Scope
from monitor.admin.routines import editable
from monitor.importing.community import ROUTINE_KINDS
from monitor.models import (
    OPEN_STATUSES,
    Alert,
    AwayPeriod,
    Device,
    Event,
    Resident,
    Routine,
    Settlement,
)
from monitor.rules.device_health import LOW_BATTERY

SERIES_DAYS = 30
USUAL_MIN_DAYS = 5  # fewer days of data than this give no "usual" time
# How far from the usual time a day must be to count as later or earlier than usual.
UNUSUAL_MARGIN_MIN = 20
TIMELINE_MAX_EVENTS = 1000  # a motion-heavy home can log thousands a day
LIST_LIMIT = 200


# -- the list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentRow:
    id: str
    name: str
    building: str
    unit: str
    devices: int
    open_alerts: int
    help_open: bool  # an open help alert: shown red, not amber


def resident_list(
    session: Session, scope: Scope, query: str = "", building: str = "", limit: int = LIST_LIMIT
) -> tuple[list[ResidentRow], int]:
    """Active residents in scope matching `query` (name, unit or id) and `building`, at most
    `limit` of them by building and unit, and how many matched in all. Two statements."""
    devices = (
        select(func.count(Device.id))
        .where(Device.resident_id == Resident.id)
        .correlate(Resident)
        .scalar_subquery()
    )
    open_alerts = (
        select(func.count(Alert.id))
        .where(Alert.resident_id == Resident.id, Alert.status.in_(OPEN_STATUSES))
        .correlate(Resident)
        .scalar_subquery()
    )
    help_open = (
        select(func.count(Alert.id))
        .where(
            Alert.resident_id == Resident.id,
            Alert.status.in_(OPEN_STATUSES),
            Alert.kind == "help",
        )
        .correlate(Resident)
        .scalar_subquery()
    )
    where = [Resident.active, scope.residents(Resident.id)]
    q = query.strip()
    if q:
        where.append(
            or_(
                Resident.name.icontains(q, autoescape=True),
                Resident.unit.icontains(q, autoescape=True),
                Resident.id.icontains(q, autoescape=True),
            )
        )
    if building:
        where.append(Resident.building == building)
    total = session.scalar(select(func.count(Resident.id)).where(*where)) or 0
    rows = session.execute(
        select(
            Resident.id,
            Resident.name,
            Resident.building,
            Resident.unit,
            devices,
            open_alerts,
            help_open,
        )
        .where(*where)
        .order_by(Resident.building, Resident.unit, Resident.name)
        .limit(limit)
    ).all()
    return [ResidentRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6] > 0) for r in rows], total


def buildings_in_scope(session: Session, scope: Scope) -> list[str]:
    """The buildings to filter by: those of the active residents the user may see."""
    return list(
        session.scalars(
            select(Resident.building)
            .distinct()
            .where(Resident.active, scope.residents(Resident.id))
            .order_by(Resident.building)
        )
    )


# -- one resident ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentInfo:
    id: str
    name: str
    building: str
    unit: str
    timezone: str
    active: bool
    phone: str
    contact: str
    notes: str


@dataclass(frozen=True)
class DeviceView:
    id: str
    kind: str
    state: str | None
    battery: float | None
    last_seen: datetime | None
    status: str  # online | offline (it said so) | silent (nothing for too long) | never

    @property
    def low_battery(self) -> bool:
        return self.battery is not None and self.battery < LOW_BATTERY


@dataclass(frozen=True)
class RoutineView:
    id: int
    kind: str
    slot: str
    start: str | None
    end: str | None
    grace_s: int
    hours: float | None
    active: bool
    window_date: date | None
    next_due_at: datetime | None
    # Today's window: satisfied | missed | away | unknown (settled), pending (still to
    # come), paused, or None (no window today, e.g. help or a rolling inactivity check).
    today: str | None
    editable: bool


@dataclass(frozen=True)
class AwayView:
    id: int
    first_day: date
    last_day: date
    current: bool  # today is inside it


@dataclass(frozen=True)
class TimelineItem:
    """One line of today's timeline. `source` is event | window | alert | resolved."""

    at: datetime
    source: str
    device_id: str | None = None
    kind: str = ""  # device kind, routine kind or alert kind
    value: str = ""  # event value, window outcome, alert status or resolution outcome
    alert_id: int | None = None


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    status: str
    severity: str
    raised_at: datetime
    detail: str
    claimed_by: str | None


@dataclass(frozen=True)
class DayPoint:
    """One local day of the 30-day series; times are minutes after local midnight."""

    day: date
    first_open: int | None = None
    last_close: int | None = None
    first_light: int | None = None
    alerts: int = 0
    alert_kinds: tuple[str, ...] = ()
    away: bool = False
    has_data: bool = False  # any curtain or light event that day


@dataclass(frozen=True)
class SeriesStats:
    usual_open: int | None  # median first opening, minutes after midnight
    usual_light: int | None
    late_streak: int  # most recent days in a row opening later than usual
    early_streak: int
    days_without_open: int  # since data began, not away, today only once it has data
    days_watched: int


@dataclass(frozen=True)
class ResidentPage:
    resident: ResidentInfo
    zone: ZoneInfo
    today: date
    devices: list[DeviceView]
    routines: list[RoutineView]
    away: list[AwayView]
    open_alerts: list[AlertView]
    timeline: list[TimelineItem]
    timeline_truncated: bool
    series: list[DayPoint]
    stats: SeriesStats


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant local `day` begins (zoneinfo resolves DST; see monitor.rules.windows)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def device_status(
    online: bool | None, alive_until: datetime | None, last_seen: datetime | None, now: datetime
) -> str:
    """The engine's offline rule, as a word for the page."""
    if online is False:
        return "offline"
    if last_seen is None:
        return "never"
    if alive_until is not None and alive_until < now:
        return "silent"
    return "online"


def resident_page(
    session: Session, resident_id: str, now: datetime, days: int = SERIES_DAYS
) -> ResidentPage | None:
    """Everything the resident page shows, in eight statements however long the history."""
    r = session.get(Resident, resident_id)
    if r is None:
        return None
    zone = ZoneInfo(r.timezone)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    span_start, today_start = day_start(first, zone), day_start(today, zone)
    today_end = day_start(today + timedelta(days=1), zone)

    devices = [
        DeviceView(
            d.id,
            d.kind,
            d.state,
            d.battery,
            d.last_seen,
            device_status(d.online, d.alive_until, d.last_seen, now),
        )
        for d in session.scalars(
            select(Device).where(Device.resident_id == resident_id).order_by(Device.kind, Device.id)
        )
    ]
    settled_today = session.execute(
        select(Settlement.routine_id, Settlement.kind, Settlement.outcome, Settlement.due_at)
        .where(
            Settlement.window_date == today,
            # by routine: sought through the key (window_date, routine_id, due_at)
            Settlement.routine_id.in_(select(Routine.id).where(Routine.resident_id == resident_id)),
        )
        .order_by(Settlement.due_at)
    ).all()
    outcome_today = {s.routine_id: s.outcome for s in settled_today}
    routines = [
        RoutineView(
            x.id,
            x.kind,
            x.slot,
            x.start,
            x.end,
            x.grace_s,
            x.hours,
            x.active,
            x.window_date,
            x.next_due_at,
            _today_state(x, today, outcome_today),
            editable(x.kind),
        )
        for x in session.scalars(
            select(Routine).where(Routine.resident_id == resident_id).order_by(Routine.slot)
        )
    ]
    routines.sort(key=lambda x: ROUTINE_KINDS.index(x.kind) if x.kind in ROUTINE_KINDS else 99)
    away = [
        AwayView(a.id, a.first_day, a.last_day, a.first_day <= today <= a.last_day)
        for a in session.scalars(
            select(AwayPeriod)
            .where(AwayPeriod.resident_id == resident_id, AwayPeriod.last_day >= first)
            .order_by(AwayPeriod.first_day)
        )
    ]
    # One read of alerts serves three parts: the open ones, the timeline, the chart.
    alerts = (
        session.execute(
            select(Alert)
            .where(
                Alert.resident_id == resident_id,
                or_(
                    Alert.status.in_(OPEN_STATUSES),
                    Alert.raised_at >= span_start,
                    Alert.resolved_at >= today_start,
                ),
            )
            .order_by(Alert.raised_at)
        )
        .scalars()
        .all()
    )
    today_events = session.execute(
        select(Event.ts, Event.device_id, Event.kind, Event.value)
        .where(Event.resident_id == resident_id, Event.ts >= today_start, Event.ts < today_end)
        .order_by(Event.ts, Event.id)
        .limit(TIMELINE_MAX_EVENTS + 1)
    ).all()
    series_events = session.execute(
        select(Event.ts, Event.kind, Event.value)
        .where(
            Event.resident_id == resident_id,
            Event.ts >= span_start,
            Event.ts < today_end,
            Event.kind.in_(("curtain", "light")),
        )
        .order_by(Event.ts)
    ).all()

    timeline: list[TimelineItem] = [
        TimelineItem(e.ts, "event", e.device_id, e.kind, e.value)
        for e in today_events[:TIMELINE_MAX_EVENTS]
    ]
    timeline += [TimelineItem(s.due_at, "window", None, s.kind, s.outcome) for s in settled_today]
    for a in alerts:
        if today_start <= a.raised_at < today_end:
            timeline.append(TimelineItem(a.raised_at, "alert", a.device_id, a.kind, a.status, a.id))
        if a.resolved_at is not None and today_start <= a.resolved_at < today_end:
            timeline.append(
                TimelineItem(a.resolved_at, "resolved", a.device_id, a.kind, a.outcome or "", a.id)
            )
    timeline.sort(key=lambda item: item.at)

    series = day_series(
        [(e.ts, e.kind, e.value) for e in series_events],
        [(a.raised_at, a.kind) for a in alerts],
        [(a.first_day, a.last_day) for a in away],
        zone,
        first,
        today,
    )
    info = ResidentInfo(
        r.id, r.name, r.building, r.unit, r.timezone, r.active, r.phone, r.contact, r.notes
    )
    open_alerts = [
        AlertView(a.id, a.kind, a.status, a.severity, a.raised_at, a.detail, a.claimed_by)
        for a in alerts
        if a.status in OPEN_STATUSES
    ]
    return ResidentPage(
        info,
        zone,
        today,
        devices,
        routines,
        away,
        open_alerts,
        timeline,
        len(today_events) > TIMELINE_MAX_EVENTS,
        series,
        series_stats(series),
    )


def _today_state(x: Routine, today: date, settled: dict[int, str]) -> str | None:
    if x.id in settled:
        return settled[x.id]
    if not x.active:
        return "paused"
    if x.start is not None and x.window_date == today:
        return "pending"
    return None


def day_series(
    events: Sequence[tuple[datetime, str, str]],
    alerts: Sequence[tuple[datetime, str]],
    away: Sequence[tuple[date, date]],
    zone: ZoneInfo,
    first: date,
    last: date,
) -> list[DayPoint]:
    """Per local day from `first` to `last`: first curtain opening, last closing, first
    light on, and the alerts raised. `events` are (ts, device kind, value) in time order."""
    opens: dict[date, int] = {}
    closes: dict[date, int] = {}
    lights: dict[date, int] = {}
    seen: set[date] = set()
    for ts, kind, value in events:
        local = ts.astimezone(zone)
        day, minute = local.date(), local.hour * 60 + local.minute
        seen.add(day)
        if kind == "curtain" and value == "open":
            opens.setdefault(day, minute)
        elif kind == "curtain" and value == "closed":
            closes[day] = minute  # time order: the last one wins
        elif kind == "light" and value == "on":
            lights.setdefault(day, minute)
    raised: dict[date, list[str]] = {}
    for at, kind in alerts:
        raised.setdefault(at.astimezone(zone).date(), []).append(kind)
    points = []
    day = first
    while day <= last:
        kinds = raised.get(day, [])
        points.append(
            DayPoint(
                day,
                opens.get(day),
                closes.get(day),
                lights.get(day),
                len(kinds),
                tuple(sorted(set(kinds))),
                any(a <= day <= b for a, b in away),
                day in seen,
            )
        )
        day += timedelta(days=1)
    return points


def series_stats(points: Sequence[DayPoint]) -> SeriesStats:
    """The usual opening (and light) time, the current run of later or earlier mornings,
    and the days with no opening at all. The last point is today: it counts only once it
    has data, since the morning may still be ahead."""
    if points and not points[-1].has_data:
        points = points[:-1]
    opens = [p.first_open for p in points if p.first_open is not None]
    lights = [p.first_light for p in points if p.first_light is not None]
    usual = round(statistics.median(opens)) if len(opens) >= USUAL_MIN_DAYS else None
    usual_light = round(statistics.median(lights)) if len(lights) >= USUAL_MIN_DAYS else None
    late = early = 0
    if usual is not None:
        late = _streak(points, lambda m: m > usual + UNUSUAL_MARGIN_MIN)
        early = _streak(points, lambda m: m < usual - UNUSUAL_MARGIN_MIN)
    began = next((i for i, p in enumerate(points) if p.has_data), len(points))
    watched = [p for p in points[began:] if not p.away]
    return SeriesStats(
        usual,
        usual_light,
        late,
        early,
        sum(1 for p in watched if p.first_open is None),
        len(watched),
    )


def _streak(points: Sequence[DayPoint], unusual: Callable[[int], bool]) -> int:
    """Days in a row, newest first, whose opening is `unusual`; away days are skipped, a
    day without an opening ends the run."""
    n = 0
    for p in reversed(points):
        if p.away:
            continue
        if p.first_open is None or not unusual(p.first_open):
            break
        n += 1
    return n
