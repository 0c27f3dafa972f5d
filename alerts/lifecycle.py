"""Alert lifecycle: open -> claimed -> resolved. Turns the engine's findings into alert rows,
one open alert per (resident, cause): a repeat bumps `repeats` on the open one. Auto-resolves
what a late check-in or a recovered device answers. Claims and manual resolution by people
come with the alert flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text, update
from sqlalchemy.orm import Session

from monitor.db import dialect_insert_for, won
from monitor.engine import Finding
from monitor.models import Alert, table

AL = table(Alert)

SEVERITY = {
    "help": "critical",
    "inactivity": "critical",
    "missed_routine": "warning",
    "device_offline": "info",
    "low_battery": "info",
    "system": "critical",
}
SYSTEM_ACTOR = "curtainwatch"


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

    def _raise(self, session: Session, findings: list[Finding]) -> None:
        stmt = dialect_insert_for(session, AL)
        stmt = stmt.on_conflict_do_update(
            index_elements=["resident_id", "cause"],
            index_where=text("status != 'resolved'"),
            set_={
                "repeats": AL.c.repeats + 1,
                "last_raised_at": stmt.excluded.last_raised_at,
                "due_at": stmt.excluded.due_at,
                "detail": stmt.excluded.detail,
            },
        ).returning(AL.c.resident_id, AL.c.cause, AL.c.id, AL.c.repeats)
        rows = [
            {
                "resident_id": f.resident_id,
                "device_id": f.device_id,
                "routine_id": f.routine_id,
                "kind": f.kind,
                "cause": f.cause,
                "severity": SEVERITY[f.kind],
                "status": "open",
                "detail": f.detail,
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
            update(AL)
            .where(
                AL.c.resident_id == bindparam("rid"),
                AL.c.cause == bindparam("c"),
                AL.c.status != "resolved",
            )
            .values(
                status="resolved",
                resolved_at=bindparam("at"),
                outcome=bindparam("o"),
                resolved_by=SYSTEM_ACTOR,
                note=bindparam("note"),
                next_escalation_at=None,
            ),
            [
                {"rid": f.resident_id, "c": f.cause, "at": f.at, "o": f.outcome, "note": f.detail}
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
        update(AL)
        .where(AL.c.id == alert_id, AL.c.status == "open")
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
        update(AL)
        .where(AL.c.id == alert_id, AL.c.status != "resolved")
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
