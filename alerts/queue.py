"""The alerts queue and history as the dashboard shows them (what people may do to an alert
is `alerts.actions`). Plain functions over a Session, narrowed by a
`monitor.access.Scope`: a volunteer sees the alerts of their buildings only, a family member
their relative's, and system alerts (no resident) are for staff and admins.

Every list is a fixed number of statements, however many alerts it shows: the alerts (with
resident and routine joined in), then the deliveries of all listed alerts in one query, the
notes in one, and the names of everyone involved in one. Results are frozen snapshots, safe
to use after the session is closed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, literal, select, true
from sqlalchemy.orm import Session

from alerts.tokens import OUTCOMES
from monitor.access import SYSTEM_ACTOR, Scope
from monitor.messages import Message, load
from monitor.models import (
    OPEN_STATUSES,
    User,
    table,
)
from monitor.paging import Page
from monitor.tables import ALERT_NOTES, ALERTS, DELIVERIES, PEOPLE, RESIDENTS, ROUTINES

KINDS = ("help", "missed_routine", "inactivity", "device_offline", "low_battery", "system")
# Outcomes curtainwatch records by itself (a late check-in, a sensor back); people choose
# from alerts.tokens.OUTCOMES only.
SYSTEM_OUTCOMES = (
    "late",
    "activity_resumed",
    "back_online",
    "battery_replaced",
    "device_moved",
    "device_removed",
)
ALL_OUTCOMES = OUTCOMES + SYSTEM_OUTCOMES
PER_PAGE = 50
QUEUE_LIMIT = 500
EXPORT_CHUNK = 500


class ActionError(Exception):
    """Something the person asked for that cannot be done (the view decides the words)."""


class Forbidden(ActionError):
    """Outside the person's scope, or their role may not act (family)."""


class Missing(ActionError):
    """No such alert (only said to those who could see it if it existed: staff)."""


@dataclass(frozen=True)
class DeliveryLine:
    """One notification of an alert: to whom, over what, at which ladder step, how it went."""

    person_id: str
    person_name: str
    scheme: str
    step: int
    status: str  # pending | sent | gave_up | skipped
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class NoteLine:
    id: int
    author: str
    author_name: str
    text: str
    at: datetime


@dataclass(frozen=True)
class AlertLine:
    """An alert with what the dashboard shows beside it."""

    id: int
    resident_id: str | None
    resident_name: str | None
    building: str | None
    unit: str | None
    kind: str
    routine_kind: str | None
    device_id: str | None
    detail: str  # English
    detail_message: Message | None  # the same, for a page to translate (monitor.messages)
    severity: str
    status: str
    due_at: datetime | None
    raised_at: datetime
    last_raised_at: datetime
    repeats: int
    escalation_level: int
    claimed_by: str | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_by_name: str | None
    outcome: str | None
    note: str | None  # the resolver's note; English if the engine resolved it
    note_message: Message | None  # the engine's note, to translate
    delivery_problem: str | None
    deliveries: tuple[DeliveryLine, ...] = ()
    notes: tuple[NoteLine, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def resolved_automatically(self) -> bool:
        return self.resolved_by == SYSTEM_ACTOR


@dataclass(frozen=True)
class Queue:
    rows: tuple[AlertLine, ...]
    total: int  # may exceed len(rows) when the queue is longer than the page shows


@dataclass(frozen=True)
class HistoryFilter:
    """What the history shows. Dates are local days in the community's zone, inclusive."""

    resident_id: str | None = None
    kind: str | None = None
    outcome: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    include_open: bool = False  # False: resolved alerts only


@dataclass(frozen=True)
class ResidentChoice:
    id: str
    name: str
    building: str
    unit: str


def visible(scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on alerts keeping what `scope` may see. Alerts with no resident
    (system alerts) are for staff only."""
    if scope.sees_all:
        return true()
    return and_(ALERTS.c.resident_id.is_not(None), scope.residents(ALERTS.c.resident_id))


def _base(scope: Scope) -> Select[Any]:
    return (
        select(
            ALERTS,
            RESIDENTS.c.name.label("resident_name"),
            RESIDENTS.c.building,
            RESIDENTS.c.unit,
            ROUTINES.c.kind.label("routine_kind"),
        )
        .outerjoin(RESIDENTS, RESIDENTS.c.id == ALERTS.c.resident_id)
        .outerjoin(ROUTINES, ROUTINES.c.id == ALERTS.c.routine_id)
        .where(visible(scope))
    )


def open_queue(session: Session, scope: Scope, limit: int = QUEUE_LIMIT) -> Queue:
    """Open and claimed alerts, oldest first, with deliveries, notes and names."""
    stmt = (
        _base(scope)
        .where(ALERTS.c.status.in_(OPEN_STATUSES))
        .order_by(ALERTS.c.raised_at, ALERTS.c.id)
        .limit(limit)
    )
    rows = session.execute(stmt).all()
    total = len(rows)
    if total == limit:
        total = session.scalar(
            select(func.count())
            .select_from(ALERTS)
            .where(visible(scope), ALERTS.c.status.in_(OPEN_STATUSES))
        ) or len(rows)
    return Queue(tuple(_complete(session, rows)), total)


def alert_detail(session: Session, scope: Scope, alert_id: int) -> AlertLine:
    """One alert with its whole story. Raises Missing (staff) or Forbidden (anyone else)
    when it does not exist or is not theirs to see, so an id cannot be probed."""
    rows = session.execute(_base(scope).where(ALERTS.c.id == alert_id)).all()
    if not rows:
        raise Missing(alert_id) if scope.sees_all else Forbidden(alert_id)
    return _complete(session, rows)[0]


def _filtered(scope: Scope, f: HistoryFilter, zone: ZoneInfo) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [visible(scope)]
    if not f.include_open:
        where.append(ALERTS.c.status == "resolved")
    if f.resident_id:
        where.append(ALERTS.c.resident_id == f.resident_id)
    if f.kind:
        where.append(ALERTS.c.kind == f.kind)
    if f.outcome:
        where.append(ALERTS.c.outcome == f.outcome)
    if f.date_from:
        where.append(ALERTS.c.raised_at >= local_midnight(f.date_from, zone))
    if f.date_to:
        where.append(ALERTS.c.raised_at < local_midnight(f.date_to + timedelta(days=1), zone))
    return where


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of a local day, as an aware time (compared in UTC by the column type)."""
    return datetime.combine(day, time(0), zone)


def history(
    session: Session,
    scope: Scope,
    filters: HistoryFilter,
    zone: ZoneInfo,
    page: int = 1,
    per_page: int | None = None,
) -> Page[AlertLine]:
    """Alerts matching `filters`, newest first, one page of them (pages count from 1; past
    the last page means the last page). `per_page` defaults to PER_PAGE."""
    per_page = per_page or PER_PAGE
    where = _filtered(scope, filters, zone)
    total = session.scalar(select(func.count()).select_from(ALERTS).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    stmt = (
        _base(scope)
        .where(*where)
        .order_by(ALERTS.c.raised_at.desc(), ALERTS.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = session.execute(stmt).all()
    return Page(_complete(session, rows, details=False), total, page, per_page)


def export_rows(
    session: Session, scope: Scope, filters: HistoryFilter, zone: ZoneInfo
) -> Iterator[AlertLine]:
    """Every alert matching `filters`, newest first, read in chunks so an export of years
    does not sit in memory (one names query per chunk, no deliveries or notes)."""
    stmt = (
        _base(scope)
        .where(*_filtered(scope, filters, zone))
        .order_by(ALERTS.c.raised_at.desc(), ALERTS.c.id.desc())
        .execution_options(yield_per=EXPORT_CHUNK)
    )
    for chunk in session.execute(stmt).partitions():
        yield from _complete(session, chunk, details=False)


def resident_choices(session: Session, scope: Scope) -> list[ResidentChoice]:
    """The residents `scope` may filter the history by, by building and unit."""
    rows = session.execute(
        select(RESIDENTS.c.id, RESIDENTS.c.name, RESIDENTS.c.building, RESIDENTS.c.unit)
        .where(scope.residents(RESIDENTS.c.id))
        .order_by(RESIDENTS.c.building, RESIDENTS.c.unit, RESIDENTS.c.id)
    ).all()
    return [ResidentChoice(*r) for r in rows]


def _complete(session: Session, rows: Sequence[Any], details: bool = True) -> list[AlertLine]:
    """AlertLines for the alert rows, with deliveries and notes (when `details`) and the
    names of claimers, resolvers and note authors: one statement each, for all rows."""
    ids = [r.id for r in rows]
    deliveries: dict[int, list[DeliveryLine]] = {i: [] for i in ids}
    notes: dict[int, list[Any]] = {i: [] for i in ids}
    actors: set[str] = set()
    for r in rows:
        actors.update(a for a in (r.claimed_by, r.resolved_by) if a)
    if details and ids:
        for d in session.execute(
            select(DELIVERIES, PEOPLE.c.name.label("person_name"))
            .outerjoin(PEOPLE, PEOPLE.c.id == DELIVERIES.c.person_id)
            .where(DELIVERIES.c.alert_id.in_(ids))
            .order_by(DELIVERIES.c.created_at, DELIVERIES.c.step, DELIVERIES.c.id)
        ):
            deliveries[d.alert_id].append(
                DeliveryLine(
                    person_id=d.person_id,
                    person_name=d.person_name or d.person_id,
                    scheme=d.scheme,
                    step=d.step,
                    status=d.status,
                    attempts=d.attempts,
                    last_error=d.last_error,
                    created_at=d.created_at,
                    sent_at=d.sent_at,
                )
            )
        for n in session.execute(
            select(ALERT_NOTES)
            .where(ALERT_NOTES.c.alert_id.in_(ids))
            .order_by(ALERT_NOTES.c.at, ALERT_NOTES.c.id)
        ):
            notes[n.alert_id].append(n)
            actors.add(n.author)
    names = actor_names(session, actors)
    return [
        AlertLine(
            id=r.id,
            resident_id=r.resident_id,
            resident_name=r.resident_name,
            building=r.building,
            unit=r.unit,
            kind=r.kind,
            routine_kind=r.routine_kind,
            device_id=r.device_id,
            detail=r.detail or "",
            detail_message=load(r.detail_message),
            severity=r.severity,
            status=r.status,
            due_at=r.due_at,
            raised_at=r.raised_at,
            last_raised_at=r.last_raised_at,
            repeats=r.repeats,
            escalation_level=r.escalation_level,
            claimed_by=r.claimed_by,
            claimed_by_name=names.get(r.claimed_by) if r.claimed_by else None,
            claimed_at=r.claimed_at,
            resolved_at=r.resolved_at,
            resolved_by=r.resolved_by,
            resolved_by_name=names.get(r.resolved_by) if r.resolved_by else None,
            outcome=r.outcome,
            note=r.note,
            note_message=load(r.note_message),
            delivery_problem=r.delivery_problem,
            deliveries=tuple(deliveries[r.id]),
            notes=tuple(
                NoteLine(n.id, n.author, names.get(n.author, n.author), n.text, n.at)
                for n in notes[r.id]
            ),
        )
        for r in rows
    ]


def actor_names(session: Session, actors: Iterable[str]) -> dict[str, str]:
    """Display names of actors as claims, notes and the audit log record them: a person's
    id, or ``user:<username>`` for a user with no person (one statement). Unknown actors
    keep their id; curtainwatch itself is not looked up."""
    actors = {a for a in actors if a and a != SYSTEM_ACTOR}
    people = [a for a in actors if not a.startswith("user:")]
    users = [a.removeprefix("user:") for a in actors if a.startswith("user:")]
    names = {a: a for a in actors}
    if not actors:
        return names
    U = table(User)
    display = func.coalesce(func.nullif(U.c.display_name, ""), U.c.username)
    stmt = (
        select(PEOPLE.c.id, PEOPLE.c.name)
        .where(PEOPLE.c.id.in_(people))
        .union_all(
            select((literal("user:") + U.c.username).label("id"), display).where(
                U.c.username.in_(users)
            )
        )
    )
    names.update({actor: name for actor, name in session.execute(stmt)})
    return names
