"""The escalation ladder: an unclaimed alert notifies the volunteers on duty for the
resident's building at once, staff after the configured wait, then family members who
consented. Like the settle loop, one query finds the alerts whose `next_escalation_at` has
come; a conditional UPDATE on `escalation_level` claims each step, and the unique key on
deliveries means one message per alert per step per channel even if two instances run.

Also, Alertmanager-style sense:
- device alerts (offline sensor, low battery) go to staff only;
- no volunteer on duty for the building: staff hear at once instead;
- a claimed alert not resolved in time reminds the claimer, then tells staff;
- a silence for a building or resident holds its ladders until it ends (help excepted);
- quiet hours hold a person's non-critical messages until they end;
- a burst of missed windows in one tick (a broker or network outage, not twenty
  emergencies) becomes one system alert to staff."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.duty import on_duty, quiet_until
from monitor.clock import Clock
from monitor.db import upsert, won
from monitor.messages import N_, Message, dump, english, instant
from monitor.models import Alert, Community, Delivery, Person, Resident, Silence, table
from monitor.tables import ALERTS

DEFAULT_LADDER = [
    {"after_s": 0, "notify": "volunteers"},
    {"after_s": 15 * 60, "notify": "staff"},
    {"after_s": 30 * 60, "notify": "family"},
]
STAFF_ONLY = ("device_offline", "low_battery", "system")
REMIND_CLAIMER, REMIND_STAFF, GROUPED = 100, 101, 99  # ladder levels past the normal steps
REMIND_STAFF_AFTER = timedelta(minutes=15)
BURST = 10


@dataclass(frozen=True)
class _Context:
    now: datetime
    ladder: list[dict[str, Any]]
    people: Sequence[Person]
    residents: dict[str, Resident]
    silences: Sequence[Silence]


class Escalator:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, burst: int = BURST) -> None:
        self.sessions = sessions
        self.clock = clock
        self.burst = burst

    def escalate(self) -> int:
        """Take every due alert one step; returns how many steps were taken."""
        now = self.clock.now()
        with self.sessions.begin() as session:
            community = session.get(Community, 1)
            ladder = sorted(
                (community.escalation if community and community.escalation else DEFAULT_LADDER),
                key=lambda s: s["after_s"],
            )
            due = session.scalars(
                select(Alert)
                .where(Alert.status.in_(("open", "claimed")), Alert.next_escalation_at <= now)
                .order_by(Alert.next_escalation_at)
                .limit(500)
            ).all()
            if not due:
                return 0
            ctx = _Context(
                now,
                ladder,
                session.scalars(select(Person)).all(),
                {r.id: r for r in session.scalars(select(Resident))},
                session.scalars(
                    select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
                ).all(),
            )
            fresh = [a for a in due if a.kind == "missed_routine" and a.escalation_level == 0]
            if len(fresh) >= self.burst:
                self._group(session, fresh, ctx)
                due = [a for a in due if a not in fresh]
            return sum(self._step(session, a, ctx) for a in due)

    def _step(self, session: Session, alert: Alert, ctx: _Context) -> int:
        level = alert.escalation_level
        resident = ctx.residents.get(alert.resident_id or "")
        silence = _silencing(ctx.silences, alert, resident)
        if silence is not None:
            _move(session, alert, level, level, silence.ends_at)
            return 0
        if alert.status == "claimed":
            step, nxt, next_at = (
                (REMIND_CLAIMER, REMIND_CLAIMER, ctx.now + REMIND_STAFF_AFTER)
                if level < REMIND_CLAIMER
                else (REMIND_STAFF, REMIND_STAFF, None)
            )
            target = "claimer" if step == REMIND_CLAIMER else "staff"
        else:
            steps = [{"after_s": 0, "notify": "staff"}] if alert.kind in STAFF_ONLY else ctx.ladder
            if level >= len(steps):
                _move(session, alert, level, level, None)
                return 0
            step, nxt = level, level + 1
            next_at = (
                alert.raised_at + timedelta(seconds=float(str(steps[nxt]["after_s"])))
                if nxt < len(steps)
                else None
            )
            target = str(steps[level]["notify"])
        if not _move(session, alert, level, nxt, next_at):
            return 0  # another instance took this step
        recipients = _recipients(target, alert, resident, ctx)
        if target == "volunteers" and not recipients:
            recipients = _recipients("staff", alert, resident, ctx)  # nobody on duty
        _queue(session, alert, step, recipients, ctx.now, resident)
        return 1

    def _group(self, session: Session, alerts: list[Alert], ctx: _Context) -> None:
        """Many windows missed in one tick: one system alert to staff instead of many pages."""
        detail: Message = (
            N_(
                "%(n)s routines missed at once at %(when_at)s: more likely a broker, network "
                "or power problem than %(n)s emergencies. Check the dashboard."
            ),
            {"n": len(alerts), "when_at": instant(ctx.now)},
        )
        system = Alert(
            resident_id=None,
            kind="system",
            cause=f"burst:{ctx.now.isoformat()}",
            severity="critical",
            status="open",
            detail=english(detail),
            detail_message=dump(detail),
            raised_at=ctx.now,
            last_raised_at=ctx.now,
            repeats=0,
            escalation_level=1,
            next_escalation_at=None,
        )
        session.add(system)
        session.flush()
        for a in alerts:
            if _move(session, a, 0, GROUPED, None):
                grouped: Message = (N_("grouped into system alert #%(id)s"), {"id": system.id})
                a.detail, a.detail_message = english(grouped), dump(grouped)
        _queue(session, system, 0, _recipients("staff", system, None, ctx), ctx.now, None)


def _move(session: Session, alert: Alert, level: int, nxt: int, at: datetime | None) -> bool:
    """Claim a step: only the instance that still sees `level` moves the alert on."""
    return won(
        session.execute(
            update(ALERTS)
            .where(ALERTS.c.id == alert.id, ALERTS.c.escalation_level == level)
            .values(escalation_level=nxt, next_escalation_at=at)
        )
    )


def _silencing(
    silences: Sequence[Silence], alert: Alert, resident: Resident | None
) -> Silence | None:
    if alert.kind == "help" or resident is None:
        return None  # someone asking for help is never muted
    return next(
        (
            s
            for s in silences
            if s.resident_id == resident.id or (s.building and s.building == resident.building)
        ),
        None,
    )


def _recipients(
    target: str, alert: Alert, resident: Resident | None, ctx: _Context
) -> list[Person]:
    tz = ZoneInfo(resident.timezone) if resident else UTC
    local = ctx.now.astimezone(tz).replace(tzinfo=None)
    if target == "claimer":
        return [p for p in ctx.people if p.id == alert.claimed_by]
    if target == "volunteers":
        return [
            p
            for p in ctx.people
            if p.role == "volunteer"
            and resident is not None
            and resident.building in (p.buildings or [])
            and on_duty(p.rota or [], local)
        ]
    if target == "staff":
        return [p for p in ctx.people if p.role == "staff"]
    # Family only ever hear about their own relative, and only with recorded consent.
    return [
        p
        for p in ctx.people
        if p.role == "family"
        and p.resident_id == alert.resident_id
        and p.consent is not None
        and p.opted_out_at is None
    ]


def _queue(
    session: Session,
    alert: Alert,
    step: int,
    people: list[Person],
    now: datetime,
    resident: Resident | None,
) -> None:
    tz = ZoneInfo(resident.timezone) if resident else UTC
    rows = []
    for p in people:
        send_at = now
        if alert.severity != "critical":
            ends = quiet_until(p.quiet_hours, now.astimezone(tz).replace(tzinfo=None))
            if ends is not None:
                send_at = ends.replace(tzinfo=tz).astimezone(UTC)
        rows += [
            {
                "alert_id": alert.id,
                "step": step,
                "person_id": p.id,
                "channel": i,
                "scheme": url.split("://", 1)[0][:32],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": send_at,
                "created_at": now,
            }
            for i, url in enumerate(p.notify)
        ]
    upsert(session, table(Delivery), rows, ["alert_id", "step", "person_id", "channel"])
