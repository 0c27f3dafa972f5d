"""The rules engine: settles routine windows, watches device health, reacts to new events.

Set-based, like Healthchecks' sendalerts loop: each round is a handful of statements over
*all* due routines, never a query per resident. What it finds (a missed window, a help
card, a silent device) goes to a FindingSink in the same transaction, so a settlement and
its alert commit together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    Integer,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement, Select

from monitor.clock import Clock
from monitor.db import dialect_insert_for
from monitor.many_rows import ManyRows
from monitor.messages import N_, Message, instant
from monitor.models import (
    OPEN_STATUSES,
    Alert,
    AwayPeriod,
    Device,
    Event,
    Routine,
    Schedule,
    Settlement,
    table,
)
from monitor.windows import inactivity_due, local_date, wall_time, window_on

R = table(Routine)
E = table(Event)
D = table(Device)
S = table(Settlement)
AW = table(AwayPeriod)
AL = table(Alert)
SC = table(Schedule)

# Re-arm inactivity after activity: the routine's next check moves to inactivity_due().
_REARM = ManyRows(
    update(R)
    .where(R.c.id == bindparam("rid"))
    .values(next_due_at=bindparam("due"), window_date=bindparam("day")),
    ("rid", "due", "day"),
)

BATTERY_SILENCE = timedelta(hours=25)  # zigbee2mqtt counts battery devices offline after this
NEVER_SEEN_GRACE = timedelta(hours=25)
LOW_BATTERY = 15.0
BATTERY_REPLACED = 25.0


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


class Engine:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, sink: FindingSink) -> None:
        self.sessions = sessions
        self.clock = clock
        self.sink = sink

    # -- windows -------------------------------------------------------------------------

    def settle_due(self) -> int:
        """Settle every window due by now, round after round (one round per missed day after
        downtime). Returns how many windows this instance settled."""
        total = 0
        while True:
            with self.sessions.begin() as session:
                settled, pending = self._settle_round(session, self.clock.now())
            total += settled
            if not pending:
                return total

    def _settle_round(self, session: Session, now: datetime) -> tuple[int, bool]:
        """1. INSERT a settlement for every due routine (the routines of due schedules, and
           due inactivity routines), outcome computed in SQL, ON CONFLICT DO NOTHING: the
           unique (window_date, routine_id, due_at) key is the claim, so two instances
           never both win;
        2. move each due schedule (a row per timing, not per resident) to its next window
           with a conditional UPDATE, and disarm the due inactivity routines;
        3. have the sink raise the missed windows this instance won, in SQL: no row per
           window comes back to Python."""
        at = {"now": now}
        if session.execute(_ANY_DUE, at).first() is None:
            return 0, False
        # Read FOR UPDATE: wait for whoever is still adding routines to a due schedule (an
        # import holds it FOR SHARE: monitor.importer) or merging routines into one, so the
        # INSERT below sees their routines and no window passes them by (PostgreSQL; SQLite
        # has a single writer and no FOR UPDATE).
        due = session.execute(_DUE_SCHEDULES, at).all()
        won, missed = _settle(session, at)
        session.execute(_DROP_UNUSED_SCHEDULES, at)
        if due:
            _advance(session, due, now)
        session.execute(_DISARM_INACTIVITY, at)
        if missed is not None:
            self.sink.raise_missed(session, missed, now)
        return won, True

    def next_due(self) -> datetime | None:
        """When the next window is due (replay uses it to skip idle ticks)."""
        with self.sessions() as session:
            dues = [session.execute(q).scalar() for q in _NEXT_DUE]
        return min((d for d in dues if d is not None), default=None)

    # -- devices -------------------------------------------------------------------------

    def check_devices(self) -> None:
        """Raise device_offline / low_battery for devices that newly qualify, and resolve
        those whose device has recovered. Four set-based queries."""
        now = self.clock.now()
        params = {"now": now, "stale": now - NEVER_SEEN_GRACE}
        findings: list[Finding] = []
        with self.sessions.begin() as session:
            for kind, newly_bad, recovered in _DEVICE_CHECKS:
                for device_id, resident_id, last_seen, battery, online in session.execute(
                    newly_bad, params
                ):
                    findings.append(
                        Finding(
                            "raise",
                            kind,
                            resident_id,
                            f"{kind}:{device_id}",
                            now,
                            due=last_seen,
                            device_id=device_id,
                            detail=_device_detail(kind, last_seen, battery, online),
                        )
                    )
                for device_id, resident_id in session.execute(recovered, params):
                    findings.append(
                        Finding(
                            "resolve",
                            kind,
                            resident_id,
                            f"{kind}:{device_id}",
                            now,
                            device_id=device_id,
                            outcome="back_online"
                            if kind == "device_offline"
                            else "battery_replaced",
                        )
                    )
            if findings:
                self.sink(session, findings)

    # -- events from ingestion -----------------------------------------------------------

    def on_events(self, session: Session, events: Sequence[NewEvent]) -> None:
        """Called by the ingestor inside its transaction with the changes it stored: raise
        help at once, re-arm inactivity, and resolve alerts a late check-in answers."""
        if not events:
            return
        now = self.clock.now()
        findings = [
            Finding(
                "raise",
                "help",
                e.resident_id,
                "help",
                e.received_at,
                due=e.ts,
                device_id=e.device_id,
                detail=(N_("%(device)s shows help"), {"device": e.device_id}),
            )
            for e in events
            if e.kind == "help" and e.value == "help"
        ]
        last_activity: dict[str, datetime] = {}
        for e in events:
            if e.ts > last_activity.get(e.resident_id, e.ts - timedelta(seconds=1)):
                last_activity[e.resident_id] = e.ts
        residents = list(last_activity)

        rearm = []
        for rid, resident_id, hours, tz, next_due in session.execute(
            select(R.c.id, R.c.resident_id, R.c.hours, R.c.timezone, R.c.next_due_at).where(
                R.c.kind == "inactivity", R.c.active, R.c.resident_id.in_(residents)
            )
        ):
            due_at = inactivity_due(last_activity[resident_id], hours or 0)
            if due_at > now and (next_due is None or due_at > next_due):
                rearm.append((rid, due_at, local_date(due_at, ZoneInfo(tz))))
        if rearm:
            # Once per stored event in a busy batch: without SQLAlchemy's per-row assembly.
            _REARM.execute(session, rearm)

        open_alerts = session.execute(
            select(AL.c.resident_id, AL.c.kind, AL.c.cause, R.c.match_kind, R.c.match_value)
            .select_from(AL.outerjoin(R, R.c.id == AL.c.routine_id))
            .where(
                AL.c.status.in_(OPEN_STATUSES),
                AL.c.resident_id.in_(residents),
                AL.c.kind.in_(("missed_routine", "inactivity")),
            )
        ).all()
        for resident_id, kind, cause, match_kind, match_value in open_alerts:
            answer = next(
                (
                    e
                    for e in events
                    if e.resident_id == resident_id
                    and (match_kind is None or e.kind == match_kind)
                    and (match_value is None or e.value == match_value)
                ),
                None,
            )
            if answer is not None:
                findings.append(
                    Finding(
                        "resolve",
                        kind,
                        resident_id,
                        cause,
                        answer.received_at,
                        outcome="late" if kind == "missed_routine" else "activity_resumed",
                        detail=(
                            N_("%(device)s %(value)s at %(ts_at)s"),
                            {
                                "device": answer.device_id,
                                "value": answer.value,
                                "ts_at": instant(answer.ts),
                            },
                        ),
                    )
                )
        if findings:
            self.sink(session, findings)


def offline_rule(now: Any, stale: Any) -> ColumnElement[bool]:
    """The one rule for an offline device at `now` (engine, board, health, devices page):
    it said so, its silence outlasted `alive_until`, or it was added before `stale` and
    never spoke. Arguments are SQL values (bind parameters, so statements can be cached,
    or plain datetimes). Every term is strictly true or false (no NULLs), so that the
    negation means "recovered"."""
    return or_(
        D.c.online.is_(false()),
        and_(D.c.alive_until.is_not(None), D.c.alive_until < now),
        and_(D.c.last_seen.is_(None), D.c.created_at < stale),
    )


def _device_checks() -> list[tuple[str, Select[Any], Select[Any]]]:
    """(kind, query for devices that newly qualify, query for devices that recovered),
    built once: building SQLAlchemy expressions costs more than running them."""
    now = bindparam("now", type_=D.c.last_seen.type)
    offline = offline_rule(now, bindparam("stale", type_=now.type))
    checks = []
    for kind, bad, good in (
        ("device_offline", offline, ~offline),
        ("low_battery", D.c.battery < LOW_BATTERY, D.c.battery >= BATTERY_REPLACED),
    ):
        has_open = exists().where(
            AL.c.resident_id == D.c.resident_id,
            AL.c.cause == kind + ":" + D.c.id,
            AL.c.status != "resolved",
        )
        checks.append(
            (
                kind,
                select(D.c.id, D.c.resident_id, D.c.last_seen, D.c.battery, D.c.online).where(
                    bad, ~has_open
                ),
                select(D.c.id, D.c.resident_id).where(good, has_open),
            )
        )
    return checks


def _outcome(opens: Any, due: Any, day: Any) -> ColumnElement[str]:
    """The outcome of each due routine's current window (opening at `opens`, None for
    inactivity, which no event satisfies once due; due at `due`; local date `day`), as one
    SQL expression."""
    away = exists().where(
        AW.c.resident_id == R.c.resident_id,
        AW.c.first_day <= day,
        AW.c.last_day >= day,
    )
    # Uncertainty is not absence: with no live device that could have shown the routine,
    # the window is unknown (a device alert goes to staff), never missed.
    alive = exists().where(
        D.c.resident_id == R.c.resident_id,
        or_(R.c.match_kind.is_(None), D.c.kind == R.c.match_kind),
        or_(D.c.online.is_(None), D.c.online != false()),
        D.c.last_seen.is_not(None),
        or_(D.c.alive_until.is_(None), D.c.alive_until >= due),
    )
    cases = [(away, "away"), (~alive, "unknown")]
    if opens is not None:
        # EXISTS (SELECT 1 ...), not (SELECT * ...): SQLite then reads only the index.
        satisfied = (
            select(1)
            .where(
                E.c.resident_id == R.c.resident_id,
                E.c.ts >= opens,
                E.c.ts < due,
                or_(R.c.match_kind.is_(None), E.c.kind == R.c.match_kind),
                or_(R.c.match_value.is_(None), E.c.value == R.c.match_value),
            )
            .exists()
        )
        cases.insert(0, (satisfied, "satisfied"))
    return case(*cases, else_="missed")


_NOW = bindparam("now", type_=R.c.next_due_at.type)
_SCHEDULE_DUE = SC.c.next_due_at <= _NOW
_OWN_DUE = and_(R.c.next_due_at <= _NOW, R.c.active)  # inactivity
_ANY_DUE = select(1).where(or_(exists().where(_SCHEDULE_DUE), exists().where(_OWN_DUE)))
# Locked, in id order so that instances lock them in the same order.
_DUE_SCHEDULES = (
    select(
        SC.c.id,
        SC.c.timezone,
        SC.c.start,
        SC.c.end,
        SC.c.grace_s,
        SC.c.window_date,
        SC.c.next_due_at,
    )
    .where(_SCHEDULE_DUE)
    .order_by(SC.c.id)
    .with_for_update()
)
_USED = exists().where(R.c.schedule_id == SC.c.id)
_DROP_UNUSED_SCHEDULES = delete(SC).where(_SCHEDULE_DUE, ~_USED)
# Where a schedule's routines go when it reaches a window another schedule of the same
# timing already holds (schedules not due: the ones that can be ahead).
_WAITING_SCHEDULES = select(
    SC.c.id, SC.c.timezone, SC.c.start, SC.c.end, SC.c.grace_s, SC.c.window_date
).where(SC.c.next_due_at > _NOW)
# The claim: a schedule moves on only from the window it was in (next_due_at = :old).
_ADVANCE = (
    update(SC)
    .where(SC.c.id == bindparam("sid"), SC.c.next_due_at == bindparam("old"))
    .values(
        window_date=bindparam("nd"),
        window_start_at=bindparam("no"),
        next_due_at=bindparam("ndue"),
    )
)
_MERGE = (
    update(R)
    .where(
        R.c.schedule_id == bindparam("sid"),
        exists().where(SC.c.id == bindparam("sid"), SC.c.next_due_at == bindparam("old")),
    )
    .values(schedule_id=bindparam("keep"))
)
_DROP_MERGED = delete(SC).where(SC.c.id == bindparam("sid"), SC.c.next_due_at == bindparam("old"))
# An inactivity routine fires once per silence; the next activity re-arms it.
_DISARM_INACTIVITY = (
    update(R).where(_OWN_DUE, R.c.kind == "inactivity").values(next_due_at=None, window_date=None)
)
_NEXT_DUE = (
    select(func.min(SC.c.next_due_at)),
    select(func.min(R.c.next_due_at)).where(R.c.active),
)
_DEVICE_CHECKS = _device_checks()
_SETTLE_STATEMENTS: dict[str, Any] = {}
_MISSED = select(S.c.id, S.c.routine_id, S.c.resident_id, S.c.kind, S.c.due_at).order_by(S.c.id)


def _advance(session: Session, due: Sequence[Any], now: datetime) -> None:
    """Move each due schedule to its next window; one that lands where a schedule of the
    same timing already is hands its routines over and goes. (One dropped as unused since
    `due` was read matches no row.)"""
    waiting = {
        (tz, start, end, grace_s, day): sid
        for sid, tz, start, end, grace_s, day in session.execute(_WAITING_SCHEDULES, {"now": now})
    }
    advance, merge = [], []
    for sid, tz, start, end, grace_s, day, old_due in due:
        nxt = window_on(
            day + timedelta(days=1),
            wall_time(start),
            wall_time(end),
            timedelta(seconds=grace_s),
            ZoneInfo(tz),
        )
        keep = waiting.get((tz, start, end, grace_s, nxt.day))
        if keep is None:
            advance.append(
                {"sid": sid, "old": old_due, "nd": nxt.day, "no": nxt.opens_at, "ndue": nxt.due_at}
            )
        else:
            merge.append({"sid": sid, "old": old_due, "keep": keep})
    if advance:
        session.execute(_ADVANCE, advance)
    if merge:
        session.execute(_MERGE, merge)
        session.execute(_DROP_MERGED, [{"sid": m["sid"], "old": m["old"]} for m in merge])


def _settle(session: Session, at: dict[str, datetime]) -> tuple[int, Select[Any] | None]:
    """Settle every due routine's window. Returns how many settlements this instance won
    and a query for the missed ones among them (None if it won none), for the sink to
    raise in SQL: no row per window (100,000 at city scale) comes back to Python."""
    stmt = _settle_statement(session)
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(stmt, at).all()
        ids = [missed_id for _, missed_id in rows if missed_id is not None]
        if not ids:
            return rows[0][0], None
        return rows[0][0], _MISSED.where(S.c.id == any_(bindparam("won", ids, ARRAY(Integer))))
    result = cast(CursorResult[Any], session.execute(stmt, at))
    won = result.rowcount
    if not won:
        return 0, None
    # SQLite gives each new row the id one past the largest, and this transaction holds the
    # write lock from the INSERT until it commits: the rows won are ids last-won+1 .. last.
    last = result.lastrowid
    return won, _MISSED.where(S.c.id.between(last - won + 1, last), S.c.outcome == "missed")


def _settle_statement(session: Session) -> Any:
    """INSERT INTO settlements SELECT <every due routine, outcome> ON CONFLICT DO NOTHING,
    built once per dialect. On PostgreSQL it is wrapped so that one statement also returns
    the count won and the ids of the missed ones: rows (n, id), a single (n, NULL) when
    none was missed."""
    dialect = session.get_bind().dialect.name
    if dialect not in _SETTLE_STATEMENTS:
        insert = (
            dialect_insert_for(session, S)
            .from_select(
                [
                    "routine_id",
                    "resident_id",
                    "kind",
                    "window_date",
                    "due_at",
                    "outcome",
                    "settled_at",
                ],
                union_all(
                    select(
                        R.c.id,
                        R.c.resident_id,
                        R.c.kind,
                        SC.c.window_date,
                        SC.c.next_due_at,
                        _outcome(SC.c.window_start_at, SC.c.next_due_at, SC.c.window_date),
                        _NOW,
                    )
                    .select_from(SC.join(R, R.c.schedule_id == SC.c.id))
                    # Not "active = 1": without statistics SQLite would then scan every
                    # routine instead of the due schedules' routines.
                    .where(_SCHEDULE_DUE, R.c.active != false()),
                    select(
                        R.c.id,
                        R.c.resident_id,
                        R.c.kind,
                        R.c.window_date,
                        R.c.next_due_at,
                        _outcome(None, R.c.next_due_at, R.c.window_date),
                        _NOW,
                    ).where(_OWN_DUE),
                ),
            )
            .on_conflict_do_nothing(index_elements=["window_date", "routine_id", "due_at"])
        )
        if dialect == "postgresql":
            won = insert.returning(S.c.id, S.c.outcome).cte("won")
            n = select(func.count().label("n")).select_from(won).cte("n")
            _SETTLE_STATEMENTS[dialect] = select(n.c.n, won.c.id).select_from(
                n.outerjoin(won, won.c.outcome == "missed")
            )
        else:
            _SETTLE_STATEMENTS[dialect] = insert
    return _SETTLE_STATEMENTS[dialect]


def _device_detail(
    kind: str, last_seen: datetime | None, battery: float | None, online: bool | None
) -> Message:
    if kind == "low_battery":
        return N_("battery at %(percent)s%%"), {"percent": f"{battery:.0f}"}
    if online is False:
        return N_("reported offline"), {}
    if last_seen is None:
        return N_("has never reported since it was added"), {}
    return N_("silent since %(last_seen_at)s"), {"last_seen_at": instant(last_seen)}
