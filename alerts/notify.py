"""Sends queued deliveries through Apprise (each person's notify URLs: ntfy, Telegram,
WeCom, DingTalk, email, JSON webhooks...). Every attempt is recorded on the delivery;
failures retry with back-off, and after the last try the alert carries a delivery problem
for staff to see. Nothing is dropped silently.

Sending happens outside any database transaction: a slow phone gateway must not hold a
lock. Each delivery is claimed just before it is sent, with a conditional UPDATE that sets a
lease on `next_attempt_at` (now + LEASE); the lease value is the claim's token, and the
result is recorded only while the token is still there. So:
- two live instances never send the same message (one claim wins);
- each claim sends at most once, and a sender whose lease ran out (a send slower than
  LEASE) cannot overwrite the record of the instance that took the delivery over;
- a claim whose instance died is taken over when its lease ends: nothing is lost.
The one window left: an instance that dies (or loses the database) after the channel
accepted a message and before the commit that marks it sent, a few milliseconds per message,
leaves it pending, and it goes out once more LEASE later. A repeated alert is preferred to a
lost one; channels give no way to make a send and a commit one act."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import apprise
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.digest import render_digest
from alerts.escalation import REMIND_CLAIMER
from alerts.family import opt_out_token
from alerts.messages import AlertFacts, render
from alerts.tokens import make_link_token
from monitor.clock import Clock
from monitor.db import won
from monitor.messages import load
from monitor.models import Alert, Delivery, Person, Resident, Routine
from monitor.rules.day_marks import community_zone
from monitor.tables import DELIVERIES

log = logging.getLogger(__name__)

BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10))
LEASE = timedelta(minutes=2)

Send = Callable[[str, str, str], str | None]  # (url, title, body) -> error or None


def apprise_send(url: str, title: str, body: str) -> str | None:
    """Send one message; None when delivered, else the reason Apprise gave."""
    client = apprise.Apprise()
    if not client.add(url):
        return f"not a notification URL Apprise understands ({url.split('://', 1)[0]}://…)"
    with apprise.LogCapture(level=logging.WARNING) as logs:
        ok = client.notify(title=title, body=body)
    return None if ok else (logs.getvalue().strip().splitlines() or ["delivery failed"])[-1]


def superseded(status: str, step: int) -> bool:
    """A queued message no longer worth sending: the alert is resolved, or someone claimed
    it and this message belongs to the ladder the claim stopped (reminders still go)."""
    return status == "resolved" or (status == "claimed" and step < REMIND_CLAIMER)


class Notifier:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        base_url: str,
        send: Send = apprise_send,
        batch: int = 100,
        *,
        link_key: str,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.link_key = link_key  # signs each person's one-tap link (alerts.tokens)
        self.send = send
        self.batch = batch

    def send_due(self) -> int:
        """Send every delivery whose time has come; returns how many were attempted. Each
        is claimed right before its own send, so a lease covers one send, not a batch."""
        with self.sessions() as session:
            due = session.execute(
                select(DELIVERIES.c.id, DELIVERIES.c.next_attempt_at)
                .where(
                    DELIVERIES.c.status == "pending",
                    DELIVERIES.c.next_attempt_at <= self.clock.now(),
                )
                .order_by(DELIVERIES.c.next_attempt_at)
                .limit(self.batch)
            ).all()
        attempted = 0
        for did, old in due:
            lease = self._claim(did, old)
            if lease is not None:
                self._attempt(did, lease)
                attempted += 1
        return attempted

    def _claim(self, delivery_id: int, old: datetime) -> datetime | None:
        """The lease (the claim's token) if this instance won the delivery, else None."""
        lease = self.clock.now() + LEASE
        with self.sessions.begin() as session:
            claimed = session.execute(
                update(DELIVERIES)
                .where(
                    DELIVERIES.c.id == delivery_id,
                    DELIVERIES.c.status == "pending",
                    DELIVERIES.c.next_attempt_at == old,
                )
                .values(next_attempt_at=lease)
            )
            return lease if won(claimed) else None

    def _attempt(self, delivery_id: int, lease: datetime) -> None:
        with self.sessions() as session:
            d = session.get(Delivery, delivery_id)
            assert d is not None
            if d.digest_day is not None:
                who = session.get(Person, d.person_id)
                if who is not None and who.opted_out_at is not None:  # stopped since queued
                    self._finish(d.id, lease, None, skipped=True)
                    return
                digest_error = self._send_digest(session, d)
                session.close()
                self._finish(delivery_id, lease, digest_error)
                return
            alert = session.get(Alert, d.alert_id)
            person = session.get(Person, d.person_id)
            if alert is None or person is None or d.channel >= len(person.notify):
                error: str | None = "recipient or channel no longer exists"
            elif superseded(alert.status, d.step) or person.opted_out_at is not None:
                self._finish(d.id, lease, None, skipped=True)
                return
            else:
                # Family have no alert page to act on; their message carries the stop link.
                link = None
                if person.role != "family":
                    token = make_link_token(self.link_key, person.id, alert.id, self.clock.now())
                    link = f"{self.base_url}/m/{token}"
                title, body = render(_facts(session, alert), person.language, link)
                error = self.send(person.notify[d.channel], title, self._stop_line(person, body))
        self._finish(delivery_id, lease, error)

    def _send_digest(self, session: Session, d: Delivery) -> str | None:
        person = session.get(Person, d.person_id)
        resident = session.get(Resident, person.resident_id or "") if person else None
        if person is None or resident is None or d.channel >= len(person.notify):
            return "recipient or channel no longer exists"
        assert d.digest_day is not None
        title, body = render_digest(session, resident, d.digest_day, person.language)
        return self.send(person.notify[d.channel], title, self._stop_line(person, body))

    def _stop_line(self, person: Person, body: str) -> str:
        """Every message to a family member ends with their stop link."""
        if person.role != "family":
            return body
        label = "停止接收：" if person.language == "zh-CN" else "Stop these messages: "
        stop = f"{self.base_url}/family/stop/{opt_out_token(self.link_key, person.id)}"
        return f"{body}\n{label}{stop}"

    def _finish(
        self, delivery_id: int, lease: datetime, error: str | None, skipped: bool = False
    ) -> None:
        """Record the attempt, if this instance still holds the claim (its lease)."""
        now = self.clock.now()
        with self.sessions.begin() as session:
            d = session.get(Delivery, delivery_id, with_for_update=True)
            assert d is not None
            if d.status != "pending" or d.next_attempt_at != lease:
                # Our lease ran out and another instance took the delivery over (or staff
                # closed it): its record stands. Sent by both, it went out twice.
                log.warning(
                    "delivery %s: lease lost before the %s was recorded%s",
                    d.id,
                    "skip" if skipped else "attempt",
                    "; sent by this instance too" if not skipped and error is None else "",
                )
                return
            d.attempts += 0 if skipped else 1
            if skipped:
                d.status, d.next_attempt_at, d.last_error = "skipped", None, "alert no longer open"
            elif error is None:
                d.status, d.sent_at, d.next_attempt_at, d.last_error = "sent", now, None, None
            elif d.attempts <= len(BACKOFF):
                d.last_error, d.next_attempt_at = error, now + BACKOFF[d.attempts - 1]
                log.warning(
                    "delivery %s to %s failed (try %s): %s", d.id, d.person_id, d.attempts, error
                )
            else:
                d.status, d.last_error, d.next_attempt_at = "gave_up", error, None
                alert = session.get(Alert, d.alert_id)
                if alert is not None:
                    problem = (
                        f"could not reach {d.person_id} via {d.scheme} after "
                        f"{d.attempts} tries: {error}"
                    )
                    alert.delivery_problem = problem
                log.error("delivery %s to %s gave up: %s", d.id, d.person_id, error)


def _facts(session: Session, alert: Alert) -> AlertFacts:
    resident = session.get(Resident, alert.resident_id) if alert.resident_id else None
    routine = session.get(Routine, alert.routine_id) if alert.routine_id else None
    return AlertFacts(
        kind=alert.kind,
        resident_name=resident.name if resident else "-",
        building=resident.building if resident else "-",
        unit=resident.unit if resident else "",
        # A system alert has no resident: its times are the community's.
        timezone=resident.timezone if resident else community_zone(session).key,
        routine_kind=routine.kind if routine else None,
        due=alert.due_at,
        raised=alert.raised_at,
        device_id=alert.device_id,
        detail=alert.detail,
        detail_message=load(alert.detail_message),
    )
