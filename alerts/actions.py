"""What a signed-in person may do to an alert, from the dashboard (web/alert_views.py) or
the JSON API (web/api/alerts.py): claim it ("I'm going"), resolve it with what was found,
add a note. One path for both: the same checks under the person's `monitor.access.Scope`
(a volunteer acts on the alerts of their buildings only, family never, system alerts are for
staff), the same conflicts when someone got there first, and one AuditEntry per action.

Refusals are `alerts.queue.Forbidden` and `alerts.queue.Missing` (as when reading an
alert); `Conflict` and `Invalid` are the caller's to show. The phone link's own rules are
in `alerts.tokens`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import lifecycle
from alerts.lifecycle import CLAIM_TIMEOUT
from alerts.queue import ActionError, Forbidden, Missing, actor_names, visible
from alerts.tokens import NOTE_MAX, OUTCOMES
from monitor.access import Scope
from monitor.audit import record
from monitor.models import Alert, AlertNote


class Conflict(ActionError):
    """Someone got there first. `reason` is ``claimed_by_other`` or ``resolved``; `actor` is
    who (as claims record them), `other` their name, and `at` says when."""

    def __init__(
        self, reason: str, actor: str | None, other: str | None, at: datetime | None
    ) -> None:
        super().__init__(f"{reason}: {other or '-'}")
        self.reason = reason
        self.actor = actor
        self.other = other
        self.at = at


class Invalid(ActionError, ValueError):
    """A form value that cannot be stored; `field` is ``outcome`` or ``note``, `problem` is
    ``choose`` (no valid outcome), ``empty`` or ``too_long``."""

    def __init__(self, field: str, problem: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem


def _target(session: Session, scope: Scope, alert_id: int) -> Alert:
    """The alert `scope` wants to act on, or Forbidden/Missing."""
    if not scope.can_act:
        raise Forbidden(alert_id)
    alert = session.scalar(select(Alert).where(Alert.id == alert_id, visible(scope)))
    if alert is None:
        raise Missing(alert_id) if scope.sees_all else Forbidden(alert_id)
    return alert


# Where an action came from: the dashboard's forms or the JSON API (web/api/).
Via = Literal["dashboard", "api"]


def _audit(
    session: Session,
    scope: Scope,
    now: datetime,
    action: str,
    alert: Alert,
    detail: str,
    via: Via = "dashboard",
) -> None:
    """The audit entry of an action. The dashboard's detail names the resident; the API's
    says it came through the API instead (its words are pinned by tests/test_api.py)."""
    if via == "dashboard":
        where = f"resident={alert.resident_id}" if alert.resident_id else "system alert"
        detail = f"{where}; {detail}" if detail else where
    record(session, scope.actor, action, f"alert:{alert.id}", detail, now)


def _name(session: Session, actor: str | None) -> str | None:
    return actor_names(session, [actor]).get(actor, actor) if actor else None


def _conflict(session: Session, alert: Alert) -> Conflict:
    """Who got there first, as the alert stands: resolved, else claimed by someone else."""
    if alert.status == "resolved":
        return Conflict(
            "resolved", alert.resolved_by, _name(session, alert.resolved_by), alert.resolved_at
        )
    return Conflict(
        "claimed_by_other", alert.claimed_by, _name(session, alert.claimed_by), alert.claimed_at
    )


def claim(
    session: Session,
    scope: Scope,
    alert_id: int,
    now: datetime,
    remind_after: timedelta = CLAIM_TIMEOUT,
    via: Via = "dashboard",
) -> bool:
    """ "I'm going" from the dashboard or the API. True when claimed now, False when it
    already was this person's; Conflict when someone else claimed it first or it is
    resolved."""
    alert = _target(session, scope, alert_id)
    if lifecycle.claim(session, alert_id, scope.actor, now, remind_after):
        detail = "claimed through the API" if via == "api" else ""
        _audit(session, scope, now, "alert.claim", alert, detail, via)
        return True
    session.refresh(alert)
    if alert.status != "resolved" and alert.claimed_by == scope.actor:
        return False
    raise _conflict(session, alert)


def resolve(
    session: Session,
    scope: Scope,
    alert_id: int,
    outcome: str,
    note: str,
    now: datetime,
    via: Via = "dashboard",
) -> None:
    """Close an open or claimed alert with what was found (one of OUTCOMES; the automatic
    ones such as "late" are curtainwatch's alone) and an optional note. A volunteer may not
    close an alert someone else claimed; staff may."""
    alert = _target(session, scope, alert_id)
    note = note.strip()
    if outcome not in OUTCOMES:
        raise Invalid("outcome", "choose", f"outcome must be one of {', '.join(OUTCOMES)}")
    if len(note) > NOTE_MAX:
        raise Invalid("note", "too_long", f"note longer than {NOTE_MAX} characters")
    if alert.status == "resolved" or (
        alert.status == "claimed" and alert.claimed_by != scope.actor and not scope.sees_all
    ):
        raise _conflict(session, alert)
    if not lifecycle.resolve(session, alert_id, scope.actor, outcome, note, now):
        session.refresh(alert)  # resolved meanwhile
        raise _conflict(session, alert)
    detail = f"resolved through the API: {outcome}" if via == "api" else f"outcome={outcome}"
    _audit(session, scope, now, "alert.resolve", alert, detail, via)


def add_note(session: Session, scope: Scope, alert_id: int, text: str, now: datetime) -> AlertNote:
    """A note on an alert (open or resolved: follow-ups count too), at most NOTE_MAX
    characters."""
    alert = _target(session, scope, alert_id)
    text = text.strip()
    if not text:
        raise Invalid("note", "empty", "the note is empty")
    if len(text) > NOTE_MAX:
        raise Invalid("note", "too_long", f"note longer than {NOTE_MAX} characters")
    note = AlertNote(alert_id=alert_id, author=scope.actor, text=text, at=now)
    session.add(note)
    session.flush()
    _audit(session, scope, now, "alert.note", alert, f"note #{note.id}")
    return note
