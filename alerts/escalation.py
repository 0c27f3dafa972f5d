"""The escalation ladder: an unclaimed alert notifies the volunteers covering the
resident's building at once, staff after the configured wait, then family members who
consented. Like the settle loop, one query finds the alerts whose `next_escalation_at` has
come; a conditional UPDATE on `escalation_level` claims each step, and the unique key on
deliveries means one message per alert per step per channel even if two instances run.

Device alerts (offline sensor, low battery) go to staff only: a dead sensor must not page a
volunteer at night or a family far away."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.db import upsert, won
from monitor.models import Alert, Community, Delivery, Person, Resident, table

DEFAULT_LADDER = [
    {"after_s": 0, "notify": "volunteers"},
    {"after_s": 15 * 60, "notify": "staff"},
    {"after_s": 30 * 60, "notify": "family"},
]
STAFF_ONLY = ("device_offline", "low_battery")


class Escalator:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def escalate(self) -> int:
        """Take every due alert one step up its ladder; returns how many steps were taken."""
        now = self.clock.now()
        taken = 0
        with self.sessions.begin() as session:
            community = session.get(Community, 1)
            ladder = community.escalation if community and community.escalation else DEFAULT_LADDER
            ladder = sorted(ladder, key=lambda s: s["after_s"])
            due = session.scalars(
                select(Alert)
                .where(Alert.status == "open", Alert.next_escalation_at <= now)
                .order_by(Alert.next_escalation_at)
                .limit(500)
            ).all()
            people = session.scalars(select(Person)).all()
            buildings = {
                rid: b for rid, b in session.execute(select(Resident.id, Resident.building))
            }
            for alert in due:
                taken += self._step(session, alert, ladder, people, buildings, now)
        return taken

    def _step(
        self,
        session: Session,
        alert: Alert,
        ladder: list[dict[str, Any]],
        people: Any,
        buildings: dict[str, str],
        now: datetime,
    ) -> int:
        level = alert.escalation_level
        steps = [{"after_s": 0, "notify": "staff"}] if alert.kind in STAFF_ONLY else ladder
        nxt = level + 1
        after_s = float(str(steps[nxt]["after_s"])) if nxt < len(steps) else 0.0
        next_at = alert.raised_at + timedelta(seconds=after_s) if nxt < len(steps) else None
        claimed = won(
            session.execute(
                update(table(Alert))
                .where(table(Alert).c.id == alert.id, table(Alert).c.escalation_level == level)
                .values(escalation_level=nxt, next_escalation_at=next_at)
            )
        )
        if not claimed or level >= len(steps):
            return 0
        target = str(steps[level]["notify"])
        rows = [
            {
                "alert_id": alert.id,
                "step": level,
                "person_id": p.id,
                "channel": i,
                "scheme": url.split("://", 1)[0][:32],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for p in people
            if _is_target(p, target, alert, buildings)
            for i, url in enumerate(p.notify)
        ]
        upsert(session, table(Delivery), rows, ["alert_id", "step", "person_id", "channel"])
        return 1


def _is_target(person: Person, target: str, alert: Alert, buildings: dict[str, str]) -> bool:
    if target == "volunteers":
        return person.role == "volunteer" and buildings.get(alert.resident_id or "") in (
            person.buildings or []
        )
    if target == "staff":
        return person.role == "staff"
    # Family only ever hear about their own relative, and only with recorded consent.
    return (
        person.role == "family"
        and person.resident_id == alert.resident_id
        and person.consent is not None
    )
