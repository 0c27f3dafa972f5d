"""Alert lifecycle: open -> claimed -> resolved. Turns the engine's findings (and, in one
INSERT ... SELECT, the missed windows of a settle tick) into alert rows, one open alert per
(resident, cause): a repeat bumps `repeats` on the open one. Auto-resolves
what a late check-in or a recovered device answers. Claims and manual resolution by people
come with the alert flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, case, cast, func, literal, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from monitor.access import SYSTEM_ACTOR
from monitor.db import dialect_insert_for, won
from monitor.messages import dump, english
from monitor.rules.findings import Finding, routine_cause
from monitor.tables import ALERTS

SEVERITY = {
    "help": "critical",
    "inactivity": "critical",
    "missed_routine": "warning",
    "device_offline": "info",
    "low_battery": "info",
    "system": "critical",
}
RETURNED = (ALERTS.c.resident_id, ALERTS.c.cause, ALERTS.c.id, ALERTS.c.repeats)


@dataclass(frozen=True)
class Raised:
    """An alert this transaction opened (repeats == 0) or repeated."""

    alert_id: int
    finding: Finding
    severity: str
    repeats: int


class AlertBook:
    """The FindingSink the engine writes to. `on_raised` hears of every raise (replay writes
    them out); it is called inside the transaction, after the row is written."""

    def __init__(self, on_raised: Callable[[Raised], None] | None = None) -> None:
        self.on_raised = on_raised

    def __call__(self, session: Session, findings: Sequence[Finding]) -> None:
        raises: dict[tuple[str, str], Finding] = {}
        resolves: list[Finding] = []
        for f in findings:
            if f.action == "raise":
                # One statement cannot touch the same open alert twice; the first raise wins.
                raises.setdefault((f.resident_id, f.cause), f)
            else:
                resolves.append(f)
        if resolves:
            self._resolve(session, resolves)
        if raises:
            self._raise(session, list(raises.values()))

    def raise_missed(self, session: Session, missed: Select[Any], at: datetime) -> None:
        """Raise (or repeat) the alert of every missed window `missed` selects from the
        settlements, as rows of (id, routine_id, resident_id, kind, due_at): one INSERT ...
        SELECT however many there are, writing the rows raising each window's Finding
        would write. A tick over a city thus sends one statement, not a row of parameters
        per alert; only `on_raised` (replay) has the rows read back."""
        m = missed.subquery("m")
        twin = missed.subquery("twin")
        inactivity = m.c.kind == "inactivity"
        # A resident's inactivity routines share the cause "inactivity", and one statement
        # cannot touch an alert twice: as in __call__, the first one settled wins.
        first = (
            select(func.min(twin.c.id))
            .where(twin.c.resident_id == m.c.resident_id, twin.c.kind == "inactivity")
            .scalar_subquery()
        )
        now = bindparam("at", at, type_=ALERTS.c.raised_at.type)
        rows = select(
            m.c.resident_id,
            m.c.routine_id,
            case((inactivity, "inactivity"), else_="missed_routine"),
            # routine_cause(id), in SQL
            case(
                (inactivity, "inactivity"), else_=literal("routine:") + cast(m.c.routine_id, String)
            ),
            case((inactivity, SEVERITY["inactivity"]), else_=SEVERITY["missed_routine"]),
            literal("open"),
            literal(""),
            m.c.due_at,
            now,
            now,
            literal(0),
            literal(0),
            now,
        ).where(or_(~inactivity, m.c.id == first))
        columns = [
            "resident_id",
            "routine_id",
            "kind",
            "cause",
            "severity",
            "status",
            "detail",
            "due_at",
            "raised_at",
            "last_raised_at",
            "repeats",
            "escalation_level",
            "next_escalation_at",
        ]
        stmt = self._upsert(dialect_insert_for(session, ALERTS).from_select(columns, rows))
        if self.on_raised is None:
            session.execute(stmt)
            return
        returned = session.execute(stmt.returning(*RETURNED))
        result = {(r, c): (i, n) for r, c, i, n in returned}
        done: set[tuple[str, str]] = set()
        for _, routine_id, resident_id, kind, due_at in session.execute(missed):
            lapse = kind == "inactivity"
            f = Finding(
                "raise",
                "inactivity" if lapse else "missed_routine",
                resident_id,
                "inactivity" if lapse else routine_cause(routine_id),
                at,
                due=due_at,
                routine_id=routine_id,
                routine_kind=kind,
            )
            if (resident_id, f.cause) not in done:
                done.add((resident_id, f.cause))
                alert_id, repeats = result[(resident_id, f.cause)]
                self.on_raised(Raised(alert_id, f, SEVERITY[f.kind], repeats))

    @staticmethod
    def _upsert(stmt: Any) -> Any:
        """`stmt` (an INSERT) opens a new alert, or repeats the open one of its (resident,
        cause)."""
        return stmt.on_conflict_do_update(
            index_elements=["resident_id", "cause"],
            index_where=text("status != 'resolved'"),
            set_={
                "repeats": ALERTS.c.repeats + 1,
                "last_raised_at": stmt.excluded.last_raised_at,
                "due_at": stmt.excluded.due_at,
                "detail": stmt.excluded.detail,
                "detail_message": stmt.excluded.detail_message,
            },
        )

    def _raise(self, session: Session, findings: list[Finding]) -> None:
        stmt = self._upsert(dialect_insert_for(session, ALERTS)).returning(*RETURNED)
        rows = [
            {
                "resident_id": f.resident_id,
                "device_id": f.device_id,
                "routine_id": f.routine_id,
                "kind": f.kind,
                "cause": f.cause,
                "severity": SEVERITY[f.kind],
                "status": "open",
                "detail": english(f.detail) if f.detail else "",
                "detail_message": dump(f.detail) if f.detail else None,
                "due_at": f.due,
                "raised_at": f.at,
                "last_raised_at": f.at,
                "repeats": 0,
                "escalation_level": 0,
                "next_escalation_at": f.at,
            }
            for f in findings
        ]
        # Rows come back matched by key, not by position: asking SQLite for parameter order
        # would cost one statement per alert instead of a few multi-row statements.
        result = {(r, c): (i, n) for r, c, i, n in session.execute(stmt, rows)}
        if self.on_raised:
            for f in findings:
                alert_id, repeats = result[(f.resident_id, f.cause)]
                self.on_raised(Raised(alert_id, f, SEVERITY[f.kind], repeats))

    def _resolve(self, session: Session, findings: list[Finding]) -> None:
        session.execute(
            update(ALERTS)
            .where(
                ALERTS.c.resident_id == bindparam("rid"),
                ALERTS.c.cause == bindparam("c"),
                ALERTS.c.status != "resolved",
            )
            .values(
                status="resolved",
                resolved_at=bindparam("at"),
                outcome=bindparam("o"),
                resolved_by=SYSTEM_ACTOR,
                note=bindparam("note"),
                note_message=bindparam("said"),
                next_escalation_at=None,
            ),
            [
                {
                    "rid": f.resident_id,
                    "c": f.cause,
                    "at": f.at,
                    "o": f.outcome,
                    "note": english(f.detail) if f.detail else "",
                    "said": dump(f.detail) if f.detail else None,
                }
                for f in findings
            ],
        )


CLAIM_TIMEOUT = timedelta(minutes=60)


def claim(
    session: Session,
    alert_id: int,
    person_id: str,
    now: datetime,
    remind_after: timedelta = CLAIM_TIMEOUT,
) -> bool:
    """ "I'm going": the person owns the alert and its ladder stops; if it is still not
    resolved after `remind_after`, the claimer is reminded, then staff told. False if
    someone else claimed it first or it is no longer open."""
    stmt = (
        update(ALERTS)
        .where(ALERTS.c.id == alert_id, ALERTS.c.status == "open")
        .values(
            status="claimed",
            claimed_by=person_id,
            claimed_at=now,
            next_escalation_at=now + remind_after,
        )
    )
    return won(session.execute(stmt))


def resolve(
    session: Session, alert_id: int, person_id: str, outcome: str, note: str, now: datetime
) -> bool:
    """Close an open or claimed alert with what was found. False if already resolved."""
    stmt = (
        update(ALERTS)
        .where(ALERTS.c.id == alert_id, ALERTS.c.status != "resolved")
        .values(
            status="resolved",
            resolved_by=person_id,
            resolved_at=now,
            outcome=outcome,
            note=note,
            next_escalation_at=None,
        )
    )
    return won(session.execute(stmt))
