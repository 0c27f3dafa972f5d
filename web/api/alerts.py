"""/api/v1 alerts: the list (filtered, newest first, a page at a time), one alert with its
notes, and claim and resolve, which go through `alerts.actions` as on the dashboard (the same
checks under the caller's scope, the same conflicts, the same audit log)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import jsonify, request
from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session, aliased
from werkzeug.wrappers import Response

from alerts import actions
from alerts.actions import Conflict
from alerts.lifecycle import SEVERITY
from alerts.queue import Forbidden, Missing
from alerts.tokens import NOTE_MAX, OUTCOMES
from monitor.access import Scope
from monitor.models import OPEN_STATUSES, Alert, AlertNote, Person, Resident, Routine
from web.api.blueprint import (
    before,
    bp,
    caller_scope,
    cursor_arg,
    fail,
    iso,
    limit_arg,
    next_cursor,
    refuse,
    time_arg,
)
from web.helpers import get_runtime

ALERT_STATUSES = ("open", "claimed", "resolved", "active", "all")
ALERTS_LIMIT = (50, 200)  # (default, max)

_CLAIMER = aliased(Person)
_RESOLVER = aliased(Person)


def _alerts_query(scope: Scope) -> Select[Alert, str, str, str, str, str, str]:
    return (
        select(
            Alert,
            Resident.name,
            Resident.building,
            Resident.unit,
            Routine.kind,
            _CLAIMER.name,
            _RESOLVER.name,
        )
        .outerjoin(Resident, Resident.id == Alert.resident_id)
        .outerjoin(Routine, Routine.id == Alert.routine_id)
        .outerjoin(_CLAIMER, _CLAIMER.id == Alert.claimed_by)
        .outerjoin(_RESOLVER, _RESOLVER.id == Alert.resolved_by)
        .where(scope.residents(Alert.resident_id))
    )


@bp.get("/alerts")
def alerts() -> Response:
    q = _alerts_query(caller_scope())
    status = request.args.get("status", "all")
    if status not in ALERT_STATUSES:
        fail(400, f"unknown status {status!r}", field="status", allowed=list(ALERT_STATUSES))
    if status == "active":
        q = q.where(Alert.status.in_(OPEN_STATUSES))
    elif status != "all":
        q = q.where(Alert.status == status)
    kind = request.args.get("kind")
    if kind is not None:
        if kind not in SEVERITY:
            fail(400, f"unknown kind {kind!r}", field="kind", allowed=list(SEVERITY))
        q = q.where(Alert.kind == kind)
    resident_id = request.args.get("resident")
    if resident_id is not None:
        q = q.where(Alert.resident_id == resident_id)
    since, until = time_arg("since"), time_arg("until")
    if since is not None:
        q = q.where(Alert.raised_at >= since)
    if until is not None:
        q = q.where(Alert.raised_at < until)
    limit = limit_arg(*ALERTS_LIMIT)
    cursor = cursor_arg()
    if cursor is not None:
        q = q.where(before(Alert.raised_at, Alert.id, cursor))
    q = q.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit + 1)
    with get_runtime().sessions() as s:
        rows = s.execute(q).all()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1][0] if more else None
    return jsonify(
        {
            "alerts": [_alert(row) for row in page],
            "next_cursor": next_cursor(last.raised_at, last.id) if last else None,
        }
    )


@bp.get("/alerts/<int:alert_id>")
def alert(alert_id: int) -> Response:
    with get_runtime().sessions() as s:
        return jsonify(_alert_with_notes(s, caller_scope(), alert_id))


@bp.post("/alerts/<int:alert_id>/claim")
def claim_alert(alert_id: int) -> Response:
    """ "I'm going", as on the dashboard (`alerts.actions.claim`): 200 with the alert (also
    when the caller had already claimed it), 409 if someone else claimed it first or it is
    resolved."""
    scope = _acting_scope()
    runtime = get_runtime()
    now = runtime.clock.now()
    remind = timedelta(seconds=runtime.settings.claim_timeout_s)
    with _answering(scope, alert_id), runtime.sessions.begin() as s:
        actions.claim(s, scope, alert_id, now, remind, via="api")
    with runtime.sessions() as s:
        return jsonify(_alert_with_notes(s, scope, alert_id))


@bp.post("/alerts/<int:alert_id>/resolve")
def resolve_alert(alert_id: int) -> Response:
    """Close the alert with what was found, as on the dashboard (`alerts.actions.resolve`):
    body ``{"outcome": one of OUTCOMES, "note": "..."}`` (note optional, at most NOTE_MAX
    characters). A volunteer cannot close an alert someone else has claimed (409); staff can
    close anything."""
    scope = _acting_scope()
    outcome, note = _resolution_body()
    runtime = get_runtime()
    now = runtime.clock.now()
    with _answering(scope, alert_id), runtime.sessions.begin() as s:
        actions.resolve(s, scope, alert_id, outcome, note, now, via="api")
    with runtime.sessions() as s:
        return jsonify(_alert_with_notes(s, scope, alert_id))


def _acting_scope() -> Scope:
    """The caller's scope, if their role may act at all (checked before the body is read, so
    a family user is told why whatever the body says)."""
    scope = caller_scope()
    if not scope.can_act:
        fail(403, f"a {scope.role} user may see alerts but not claim or resolve them")
    return scope


@contextmanager
def _answering(scope: Scope, alert_id: int) -> Iterator[None]:
    """`alerts.actions`' refusals and conflicts as the API's answers."""
    try:
        yield
    except (Forbidden, Missing):
        refuse("alert", alert_id, scope)
    except Conflict as e:
        if e.reason == "resolved":
            fail(
                409,
                "the alert is already resolved",
                status="resolved",
                resolved_by=e.actor,
                resolved_at=iso(e.at),
            )
        fail(
            409,
            "someone else has claimed the alert",
            status="claimed",
            claimed_by=e.actor,
            claimed_at=iso(e.at),
        )


def _resolution_body() -> tuple[str, str]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        fail(
            400,
            'the body must be a JSON object: {"outcome": "...", "note": "..."}',
            allowed=list(OUTCOMES),
        )
    unknown = sorted(set(body) - {"outcome", "note"})
    if unknown:
        fail(400, f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    outcome = body.get("outcome")
    if outcome is None:
        fail(400, "outcome is required", field="outcome", allowed=list(OUTCOMES))
    if outcome not in OUTCOMES:
        fail(400, f"unknown outcome {outcome!r}", field="outcome", allowed=list(OUTCOMES))
    note = body.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        fail(400, "note must be a string", field="note")
    note = note.strip()
    if len(note) > NOTE_MAX:
        fail(
            400,
            f"note is {len(note)} characters long; at most {NOTE_MAX} are allowed",
            field="note",
            max=NOTE_MAX,
        )
    return str(outcome), note


def _alert_with_notes(s: Session, scope: Scope, alert_id: int) -> dict[str, Any]:
    row = s.execute(_alerts_query(scope).where(Alert.id == alert_id)).first()
    if row is None:
        refuse("alert", alert_id, scope)
    notes = s.scalars(
        select(AlertNote).where(AlertNote.alert_id == alert_id).order_by(AlertNote.at)
    ).all()
    return {
        **_alert(row),
        "notes": [{"author": n.author, "text": n.text, "at": iso(n.at)} for n in notes],
    }


def _alert(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    a: Alert = row[0]
    resident_name, building, unit, routine_kind, claimer, resolver = row[1:]
    return {
        "id": a.id,
        "kind": a.kind,
        "routine": routine_kind,
        "severity": a.severity,
        "status": a.status,
        "resident": a.resident_id,
        "resident_name": resident_name,
        "building": building,
        "unit": unit,
        "device": a.device_id,
        "detail": a.detail,
        "due_at": iso(a.due_at),
        "raised_at": iso(a.raised_at),
        "last_raised_at": iso(a.last_raised_at),
        "repeats": a.repeats,
        "escalation_level": a.escalation_level,
        "claimed_by": a.claimed_by,
        "claimed_by_name": claimer,
        "claimed_at": iso(a.claimed_at),
        "resolved_by": a.resolved_by,
        "resolved_by_name": resolver,
        "resolved_at": iso(a.resolved_at),
        "outcome": a.outcome,
        "note": a.note,
        "delivery_problem": a.delivery_problem,
    }
