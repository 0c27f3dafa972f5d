"""The rules engine's tick: settles routine windows (monitor.rules.settle), watches device
health (monitor.rules.device_health), reacts to new events.

Set-based, like Healthchecks' sendalerts loop: each round is a handful of statements over
*all* due routines, never a query per resident. What it finds (a missed window, a help
card, a silent device) goes to a FindingSink in the same transaction, so a settlement and
its alert commit together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.many_rows import ManyRows
from monitor.messages import N_, instant
from monitor.models import OPEN_STATUSES
from monitor.rules import settle
from monitor.rules.device_health import DEVICE_CHECKS, NEVER_SEEN_GRACE, device_detail
from monitor.rules.findings import Finding, FindingSink, NewEvent
from monitor.rules.windows import inactivity_due, local_date
from monitor.tables import ALERTS, ROUTINES

# Re-arm inactivity after activity: the routine's next check moves to inactivity_due().
_REARM = ManyRows(
    update(ROUTINES)
    .where(ROUTINES.c.id == bindparam("rid"))
    .values(next_due_at=bindparam("due"), window_date=bindparam("day")),
    ("rid", "due", "day"),
)


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
                settled, pending = settle.settle_round(session, self.clock.now(), self.sink)
            total += settled
            if not pending:
                return total

    def next_due(self) -> datetime | None:
        """When the next window is due (replay uses it to skip idle ticks)."""
        with self.sessions() as session:
            return settle.next_due(session)

    # -- devices -------------------------------------------------------------------------

    def check_devices(self) -> None:
        """Raise device_offline / low_battery for devices that newly qualify, and resolve
        those whose device has recovered. Four set-based queries."""
        now = self.clock.now()
        params = {"now": now, "stale": now - NEVER_SEEN_GRACE}
        findings: list[Finding] = []
        with self.sessions.begin() as session:
            for kind, newly_bad, recovered in DEVICE_CHECKS:
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
                            detail=device_detail(kind, last_seen, battery, online),
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
            select(
                ROUTINES.c.id,
                ROUTINES.c.resident_id,
                ROUTINES.c.hours,
                ROUTINES.c.timezone,
                ROUTINES.c.next_due_at,
            ).where(
                ROUTINES.c.kind == "inactivity",
                ROUTINES.c.active,
                ROUTINES.c.resident_id.in_(residents),
            )
        ):
            due_at = inactivity_due(last_activity[resident_id], hours or 0)
            if due_at > now and (next_due is None or due_at > next_due):
                rearm.append((rid, due_at, local_date(due_at, ZoneInfo(tz))))
        if rearm:
            # Once per stored event in a busy batch: without SQLAlchemy's per-row assembly.
            _REARM.execute(session, rearm)

        open_alerts = session.execute(
            select(
                ALERTS.c.resident_id,
                ALERTS.c.kind,
                ALERTS.c.cause,
                ROUTINES.c.match_kind,
                ROUTINES.c.match_value,
            )
            .select_from(ALERTS.outerjoin(ROUTINES, ROUTINES.c.id == ALERTS.c.routine_id))
            .where(
                ALERTS.c.status.in_(OPEN_STATUSES),
                ALERTS.c.resident_id.in_(residents),
                ALERTS.c.kind.in_(("missed_routine", "inactivity")),
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
