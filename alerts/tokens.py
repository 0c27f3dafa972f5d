"""One-tap links in notifications: the signed, expiring, single-person token each message
carries, and what the holder of such a link may see and do with the alert it names (look,
claim with "I'm going", resolve with an outcome and a note). The web page only renders what
this module decides.

Token: ``itsdangerous.URLSafeSerializer`` over the JSON list ``[person_id, alert_id,
issued_at]`` (issued_at in whole Unix seconds, taken from the injected clock), signed with
the shared key (``monitor.appsettings.secret_key``) under its own salt. Expiry is checked
here against the injected clock, not wall time: a token is good while
``-CLOCK_SKEW <= now - issued_at <= max_age``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from alerts.lifecycle import CLAIM_TIMEOUT, claim, resolve
from alerts.messages import language_or_english, what_happened
from monitor.access import person_scope
from monitor.messages import Message, load
from monitor.models import Alert, Person, Resident, Routine

LINK_MAX_AGE = timedelta(hours=24)
# Tolerated difference between instances' clocks for a token "issued in the future".
CLOCK_SKEW = timedelta(minutes=5)
SALT = "curtainwatch.phone-link.v1"

# What a volunteer found, as stored in Alert.outcome (labels live with the page).
OUTCOMES = ("fine", "needed_help", "emergency", "false_alarm_away", "sensor_problem")
NOTE_MAX = 500


class LinkTokenError(Exception):
    """A link token that must not be honoured."""


class LinkTampered(LinkTokenError):
    """Not signed by our key (altered, truncated, made up) or not a link token at all."""


class LinkExpired(LinkTokenError):
    """Genuine but too old. The (authenticated) payload is kept so the refusal can speak the
    person's language."""

    def __init__(self, person_id: str, alert_id: int, issued_at: datetime) -> None:
        super().__init__(f"link for {person_id} / alert {alert_id} issued {issued_at} expired")
        self.person_id = person_id
        self.alert_id = alert_id
        self.issued_at = issued_at


def _serializer(key: str) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=SALT)


def make_link_token(key: str, person_id: str, alert_id: int, now: datetime) -> str:
    """A token that lets `person_id` (and nobody else) act on `alert_id`, issued `now`."""
    return _serializer(key).dumps([person_id, alert_id, int(now.timestamp())])


def read_link_token(
    key: str, token: str, now: datetime, max_age: timedelta = LINK_MAX_AGE
) -> tuple[str, int]:
    """(person_id, alert_id) of a genuine, unexpired token; raises LinkTampered or
    LinkExpired otherwise."""
    try:
        payload = _serializer(key).loads(token)
    except BadSignature as e:
        raise LinkTampered("link signature does not match") from e
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or not isinstance(payload[0], str)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload[1:])
    ):
        raise LinkTampered("signed, but not a link token")
    person_id, alert_id, issued = payload
    age = now.timestamp() - issued
    if age < -CLOCK_SKEW.total_seconds():
        raise LinkTampered("link issued in the future")
    if age > max_age.total_seconds():
        raise LinkExpired(person_id, alert_id, datetime.fromtimestamp(issued, now.tzinfo))
    return person_id, alert_id


class Refused(Exception):
    """The link is genuine but its holder may not do this. `reason` is one of:
    ``unknown_person``, ``not_a_responder`` (family), ``not_your_building``, ``no_alert``,
    ``claimed_by_other``, ``resolved``, ``not_claimed_by_you``. `language` is the holder's
    when known; `building` and `other` (who is going, or who resolved it) fill in the friendly
    text. Plain values only: it outlives the session it was raised in."""

    def __init__(
        self,
        reason: str,
        person: Person | None = None,
        building: str | None = None,
        other: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.language = person.language if person else None
        self.building = building
        self.other = other


class Invalid(ValueError):
    """A resolve form that cannot be stored (`field` is ``outcome`` or ``note``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AlertView:
    """What the phone page shows: a snapshot, safe to use after the session is gone."""

    alert_id: int
    person_id: str
    person_name: str
    language: str
    resident_name: str
    building: str
    unit: str
    timezone: str
    what: str
    detail: str  # English
    detail_message: Message | None  # the same, to translate (monitor.messages)
    since: datetime
    status: str  # open | claimed | resolved
    claimed_by: str | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    resolved_by_name: str | None
    resolved_at: datetime | None
    outcome: str | None
    note: str | None
    note_message: Message | None  # the engine's note, to translate

    @property
    def mine(self) -> bool:
        return self.claimed_by == self.person_id

    @property
    def where(self) -> str:
        return f"{self.building}-{self.unit}" if self.unit else self.building


def view(session: Session, person_id: str, alert_id: int) -> AlertView:
    """What the link's holder sees; raises Refused if they may not see it."""
    person, alert = _authorize(session, person_id, alert_id)
    return _view(session, person, alert)


def claim_by_link(
    session: Session,
    person_id: str,
    alert_id: int,
    now: datetime,
    remind_after: timedelta = CLAIM_TIMEOUT,
) -> AlertView:
    """ "I'm going". Tapping twice is harmless; a claim by someone else first, or an alert
    already resolved, raises Refused (naming who is going)."""
    person, alert = _authorize(session, person_id, alert_id)
    if not claim(session, alert_id, person_id, now, remind_after):
        session.refresh(alert)
        if alert.status == "resolved":
            raise Refused("resolved", person, other=_name(session, alert.resolved_by))
        if alert.claimed_by != person_id:
            raise Refused("claimed_by_other", person, other=_name(session, alert.claimed_by))
    session.refresh(alert)
    return _view(session, person, alert)


def resolve_by_link(
    session: Session, person_id: str, alert_id: int, outcome: str, note: str, now: datetime
) -> AlertView:
    """Record what the claimer found. Only the person who claimed the alert resolves it
    from their phone (staff can still close anything from the dashboard)."""
    person, alert = _authorize(session, person_id, alert_id)
    note = note.strip()
    if outcome not in OUTCOMES:
        raise Invalid("outcome", "choose what you found")
    if len(note) > NOTE_MAX:
        raise Invalid("note", f"note longer than {NOTE_MAX} characters")
    if alert.status == "resolved":
        raise Refused("resolved", person, other=_name(session, alert.resolved_by))
    if alert.claimed_by != person_id:
        if alert.status == "claimed":
            raise Refused("claimed_by_other", person, other=_name(session, alert.claimed_by))
        raise Refused("not_claimed_by_you", person)
    # Claimed by this person: nobody else can claim it now, only a resolve can race us.
    if not resolve(session, alert_id, person_id, outcome, note, now):
        session.refresh(alert)
        raise Refused("resolved", person, other=_name(session, alert.resolved_by))
    session.refresh(alert)
    return _view(session, person, alert)


def _authorize(session: Session, person_id: str, alert_id: int) -> tuple[Person, Alert]:
    """The link's holder and the alert, if their role may act and they cover its building
    (the rules of `monitor.access.Scope`); Refused otherwise."""
    person = session.get(Person, person_id)
    if person is None:
        raise Refused("unknown_person")
    scope = person_scope(person)
    if not scope.can_act:
        raise Refused("not_a_responder", person)
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise Refused("no_alert", person)
    resident = session.get(Resident, alert.resident_id) if alert.resident_id else None
    building = resident.building if resident else None
    if not scope.covers(building):
        raise Refused("not_your_building", person, building=building)
    return person, alert


def _name(session: Session, person_id: str | None) -> str | None:
    if person_id is None:
        return None
    p = session.get(Person, person_id)
    return p.name if p else person_id


def _view(session: Session, person: Person, alert: Alert) -> AlertView:
    resident = session.get(Resident, alert.resident_id) if alert.resident_id else None
    routine = session.get(Routine, alert.routine_id) if alert.routine_id else None
    lang = language_or_english(person.language)
    # The same wording as the notification (alerts.messages).
    key = routine.kind if alert.kind == "missed_routine" and routine else alert.kind
    return AlertView(
        alert_id=alert.id,
        person_id=person.id,
        person_name=person.name,
        language=lang,
        resident_name=resident.name if resident else "-",
        building=resident.building if resident else "-",
        unit=resident.unit if resident else "",
        timezone=resident.timezone if resident else "UTC",
        what=what_happened(key, lang),
        detail=alert.detail or "",
        detail_message=load(alert.detail_message),
        since=alert.due_at or alert.raised_at,
        status=alert.status,
        claimed_by=alert.claimed_by,
        claimed_by_name=_name(session, alert.claimed_by),
        claimed_at=alert.claimed_at,
        resolved_by_name=_name(session, alert.resolved_by),
        resolved_at=alert.resolved_at,
        outcome=alert.outcome,
        note=alert.note,
        note_message=load(alert.note_message),
    )
