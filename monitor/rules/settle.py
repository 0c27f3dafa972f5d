"""Settling windows: one round settles every due routine in a handful of statements.

1. INSERT a settlement for every due routine (the routines of due schedules, and due
   inactivity routines), outcome computed in SQL, ON CONFLICT DO NOTHING: the unique
   (window_date, routine_id, due_at) key is the claim, so two instances never both win;
2. move each due schedule (a row per timing, not per resident) to its next window with a
   conditional UPDATE, and disarm the due inactivity routines;
3. hand the missed windows this instance won to the sink, as a query: no row per window
   comes back to Python."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast
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
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from monitor.db import dialect_insert_for
from monitor.rules.findings import FindingSink
from monitor.rules.windows import wall_time, window_on
from monitor.tables import AWAY_PERIODS, DEVICES, EVENTS, ROUTINES, SCHEDULES, SETTLEMENTS


def settle_round(session: Session, now: datetime, sink: FindingSink) -> tuple[int, bool]:
    """One round (the steps above) in `session`. Returns how many windows this instance
    won and whether anything was due (another round may then be due: a day missed)."""
    at = {"now": now}
    if session.execute(_ANY_DUE, at).first() is None:
        return 0, False
    # Read FOR UPDATE: wait for whoever is still adding routines to a due schedule (an
    # import holds it FOR SHARE: monitor.importing.apply) or merging routines into one, so
    # the INSERT below sees their routines and no window passes them by (PostgreSQL; SQLite
    # has a single writer and no FOR UPDATE).
    due = session.execute(_DUE_SCHEDULES, at).all()
    won, missed = _settle(session, at)
    session.execute(_DROP_UNUSED_SCHEDULES, at)
    if due:
        _advance(session, due, now)
    session.execute(_DISARM_INACTIVITY, at)
    if missed is not None:
        sink.raise_missed(session, missed, now)
    return won, True


def next_due(session: Session) -> datetime | None:
    """When the next window is due (replay uses it to skip idle ticks)."""
    dues = [session.execute(q).scalar() for q in _NEXT_DUE]
    return min((d for d in dues if d is not None), default=None)


def _outcome(opens: Any, due: Any, day: Any) -> ColumnElement[str]:
    """The outcome of each due routine's current window (opening at `opens`, None for
    inactivity, which no event satisfies once due; due at `due`; local date `day`), as one
    SQL expression."""
    away = exists().where(
        AWAY_PERIODS.c.resident_id == ROUTINES.c.resident_id,
        AWAY_PERIODS.c.first_day <= day,
        AWAY_PERIODS.c.last_day >= day,
    )
    # Uncertainty is not absence: with no live device that could have shown the routine,
    # the window is unknown (a device alert goes to staff), never missed.
    alive = exists().where(
        DEVICES.c.resident_id == ROUTINES.c.resident_id,
        or_(ROUTINES.c.match_kind.is_(None), DEVICES.c.kind == ROUTINES.c.match_kind),
        or_(DEVICES.c.online.is_(None), DEVICES.c.online != false()),
        DEVICES.c.last_seen.is_not(None),
        or_(DEVICES.c.alive_until.is_(None), DEVICES.c.alive_until >= due),
    )
    cases = [(away, "away"), (~alive, "unknown")]
    if opens is not None:
        # EXISTS (SELECT 1 ...), not (SELECT * ...): SQLite then reads only the index.
        satisfied = (
            select(1)
            .where(
                EVENTS.c.resident_id == ROUTINES.c.resident_id,
                EVENTS.c.ts >= opens,
                EVENTS.c.ts < due,
                or_(ROUTINES.c.match_kind.is_(None), EVENTS.c.kind == ROUTINES.c.match_kind),
                or_(ROUTINES.c.match_value.is_(None), EVENTS.c.value == ROUTINES.c.match_value),
            )
            .exists()
        )
        cases.insert(0, (satisfied, "satisfied"))
    return case(*cases, else_="missed")


_NOW = bindparam("now", type_=ROUTINES.c.next_due_at.type)
_SCHEDULE_DUE = SCHEDULES.c.next_due_at <= _NOW
_OWN_DUE = and_(ROUTINES.c.next_due_at <= _NOW, ROUTINES.c.active)  # inactivity
_ANY_DUE = select(1).where(or_(exists().where(_SCHEDULE_DUE), exists().where(_OWN_DUE)))
# Locked, in id order so that instances lock them in the same order.
_DUE_SCHEDULES = (
    select(
        SCHEDULES.c.id,
        SCHEDULES.c.timezone,
        SCHEDULES.c.start,
        SCHEDULES.c.end,
        SCHEDULES.c.grace_s,
        SCHEDULES.c.window_date,
        SCHEDULES.c.next_due_at,
    )
    .where(_SCHEDULE_DUE)
    .order_by(SCHEDULES.c.id)
    .with_for_update()
)
_USED = exists().where(ROUTINES.c.schedule_id == SCHEDULES.c.id)
_DROP_UNUSED_SCHEDULES = delete(SCHEDULES).where(_SCHEDULE_DUE, ~_USED)
# Where a schedule's routines go when it reaches a window another schedule of the same
# timing already holds (schedules not due: the ones that can be ahead).
_WAITING_SCHEDULES = select(
    SCHEDULES.c.id,
    SCHEDULES.c.timezone,
    SCHEDULES.c.start,
    SCHEDULES.c.end,
    SCHEDULES.c.grace_s,
    SCHEDULES.c.window_date,
).where(SCHEDULES.c.next_due_at > _NOW)
# The claim: a schedule moves on only from the window it was in (next_due_at = :old).
_ADVANCE = (
    update(SCHEDULES)
    .where(SCHEDULES.c.id == bindparam("sid"), SCHEDULES.c.next_due_at == bindparam("old"))
    .values(
        window_date=bindparam("nd"),
        window_start_at=bindparam("no"),
        next_due_at=bindparam("ndue"),
    )
)
_MERGE = (
    update(ROUTINES)
    .where(
        ROUTINES.c.schedule_id == bindparam("sid"),
        exists().where(
            SCHEDULES.c.id == bindparam("sid"), SCHEDULES.c.next_due_at == bindparam("old")
        ),
    )
    .values(schedule_id=bindparam("keep"))
)
_DROP_MERGED = delete(SCHEDULES).where(
    SCHEDULES.c.id == bindparam("sid"), SCHEDULES.c.next_due_at == bindparam("old")
)
# An inactivity routine fires once per silence; the next activity re-arms it.
_DISARM_INACTIVITY = (
    update(ROUTINES)
    .where(_OWN_DUE, ROUTINES.c.kind == "inactivity")
    .values(next_due_at=None, window_date=None)
)
_NEXT_DUE = (
    select(func.min(SCHEDULES.c.next_due_at)),
    select(func.min(ROUTINES.c.next_due_at)).where(ROUTINES.c.active),
)
_SETTLE_STATEMENTS: dict[str, Any] = {}
_MISSED = select(
    SETTLEMENTS.c.id,
    SETTLEMENTS.c.routine_id,
    SETTLEMENTS.c.resident_id,
    SETTLEMENTS.c.kind,
    SETTLEMENTS.c.due_at,
).order_by(SETTLEMENTS.c.id)


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
        return rows[0][0], _MISSED.where(
            SETTLEMENTS.c.id == any_(bindparam("won", ids, ARRAY(Integer)))
        )
    result = cast(CursorResult[Any], session.execute(stmt, at))
    won = result.rowcount
    if not won:
        return 0, None
    # SQLite gives each new row the id one past the largest, and this transaction holds the
    # write lock from the INSERT until it commits: the rows won are ids last-won+1 .. last.
    last = result.lastrowid
    return won, _MISSED.where(
        SETTLEMENTS.c.id.between(last - won + 1, last), SETTLEMENTS.c.outcome == "missed"
    )


def _settle_statement(session: Session) -> Any:
    """INSERT INTO settlements SELECT <every due routine, outcome> ON CONFLICT DO NOTHING,
    built once per dialect. On PostgreSQL it is wrapped so that one statement also returns
    the count won and the ids of the missed ones: rows (n, id), a single (n, NULL) when
    none was missed."""
    dialect = session.get_bind().dialect.name
    if dialect not in _SETTLE_STATEMENTS:
        insert = (
            dialect_insert_for(session, SETTLEMENTS)
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
                        ROUTINES.c.id,
                        ROUTINES.c.resident_id,
                        ROUTINES.c.kind,
                        SCHEDULES.c.window_date,
                        SCHEDULES.c.next_due_at,
                        _outcome(
                            SCHEDULES.c.window_start_at,
                            SCHEDULES.c.next_due_at,
                            SCHEDULES.c.window_date,
                        ),
                        _NOW,
                    )
                    .select_from(SCHEDULES.join(ROUTINES, ROUTINES.c.schedule_id == SCHEDULES.c.id))
                    # Not "active = 1": without statistics SQLite would then scan every
                    # routine instead of the due schedules' routines.
                    .where(_SCHEDULE_DUE, ROUTINES.c.active != false()),
                    select(
                        ROUTINES.c.id,
                        ROUTINES.c.resident_id,
                        ROUTINES.c.kind,
                        ROUTINES.c.window_date,
                        ROUTINES.c.next_due_at,
                        _outcome(None, ROUTINES.c.next_due_at, ROUTINES.c.window_date),
                        _NOW,
                    ).where(_OWN_DUE),
                ),
            )
            .on_conflict_do_nothing(index_elements=["window_date", "routine_id", "due_at"])
        )
        if dialect == "postgresql":
            won = insert.returning(SETTLEMENTS.c.id, SETTLEMENTS.c.outcome).cte("won")
            n = select(func.count().label("n")).select_from(won).cte("n")
            _SETTLE_STATEMENTS[dialect] = select(n.c.n, won.c.id).select_from(
                n.outerjoin(won, won.c.outcome == "missed")
            )
        else:
            _SETTLE_STATEMENTS[dialect] = insert
    return _SETTLE_STATEMENTS[dialect]
