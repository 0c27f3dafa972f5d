"""The JSON API under /api/v1: residents, devices, alerts (list, read, claim, resolve) and
events, for integrations and scripts.

Authentication: ``Authorization: Bearer cw_...`` only (a user's API token, made by
monitor.admin.users.new_api_token). The session cookie of the dashboard is ignored on purpose, so a
page on another site cannot make a signed-in browser act through the API (the blueprint is
exempt from CSRF because nothing here trusts cookies). Missing or bad token: 401 with a
``WWW-Authenticate: Bearer`` header. What a token may see and do is its user's
`monitor.access.Scope`, exactly as on the pages: staff and admins everything, volunteers their
buildings (and may claim and resolve there), family their relative, read-only.

Conventions:
- Times are ISO 8601 in UTC with an explicit offset (``2026-11-22T23:40:00+00:00``): one
  unambiguous form for machines; residents may live in other zones than the community.
  Query times (``since``, ``until``) may carry any offset; a time without one is read in
  the community's zone.
- Errors are always JSON ``{"error": "<what is wrong>", ...}`` with details such as
  ``field``, ``allowed`` or ``max``. Outside the caller's scope: 403 (also for an id that does
  not exist, so ids cannot be probed; staff get 404 for those). Someone else got there
  first: 409.
- Lists run a constant number of statements, whatever their length. Alerts and events come
  newest first, ``limit`` at a time; ``next_cursor`` (null on the last page) is passed back
  as ``cursor`` for the next page.

Endpoints: GET residents[?building=], GET residents/<id>, GET devices[?status=offline|
low_battery][&resident=], GET alerts[?status=open|claimed|resolved|active (open or
claimed)|all (default)][&kind=]
[&resident=][&since=][&until=][&limit=][&cursor=], GET alerts/<id>, POST alerts/<id>/claim,
POST alerts/<id>/resolve {"outcome": ..., "note": ...}, GET events?resident=[&since=]
[&until=][&limit=][&cursor=] (resident optional for staff)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import Row, Select, and_, or_, select
from sqlalchemy.orm import Session, aliased
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from alerts.lifecycle import SEVERITY, claim, resolve
from alerts.tokens import NOTE_MAX, OUTCOMES
from monitor.access import Scope, scope_for
from monitor.admin.users import user_for_token
from monitor.models import (
    OPEN_STATUSES,
    Alert,
    AlertNote,
    AuditEntry,
    AwayPeriod,
    Device,
    Event,
    Person,
    Resident,
    Routine,
)
from monitor.rules.device_health import device_low_battery, device_offline
from web.helpers import community_zone, get_runtime

bp = Blueprint("api", __name__, url_prefix="/api/v1")

REALM = "curtainwatch"
ALERT_STATUSES = ("open", "claimed", "resolved", "active", "all")
DEVICE_STATUSES = ("offline", "low_battery")
ALERTS_LIMIT = (50, 200)  # (default, max)
EVENTS_LIMIT = (100, 1000)


class ApiError(Exception):
    """Answered as ``{"error": message, **extra}`` with `status`."""

    def __init__(self, status: int, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def fail(code: int, message: str, /, **extra: Any) -> NoReturn:
    raise ApiError(code, message, **extra)


@bp.errorhandler(ApiError)
def _api_error(e: ApiError) -> Response:
    resp = jsonify({"error": e.message, **e.extra})
    resp.status_code = e.status
    if e.status == 401:
        challenge = f'Bearer realm="{REALM}"'
        if e.extra.get("reason") == "invalid_token":
            challenge += ', error="invalid_token"'
        resp.headers["WWW-Authenticate"] = challenge
    return resp


@bp.errorhandler(HTTPException)
def _http_error(e: HTTPException) -> Response:
    resp = e.get_response()
    body = jsonify({"error": (e.description or e.name).strip()})
    resp.set_data(body.get_data())
    resp.content_type = "application/json"
    return resp


# -- authentication ----------------------------------------------------------------------------


@bp.before_request
def _authenticate() -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        fail(401, "an API token is required: Authorization: Bearer cw_...", reason="no_token")
    with get_runtime().sessions() as s:
        user = user_for_token(s, token)
        if user is None:
            fail(401, "the API token is not valid", reason="invalid_token")
        g.api_scope = scope_for(s, user)


def _scope() -> Scope:
    scope: Scope = g.api_scope
    return scope


def _now() -> datetime:
    return get_runtime().clock.now()


# -- residents ---------------------------------------------------------------------------------


@bp.get("/residents")
def residents() -> Response:
    q = (
        select(Resident)
        .where(_scope().residents(Resident.id))
        .order_by(Resident.building, Resident.unit, Resident.id)
    )
    building = request.args.get("building")
    if building is not None:
        q = q.where(Resident.building == building)
    with get_runtime().sessions() as s:
        rows = s.scalars(q).all()
        return jsonify({"residents": [_resident(r) for r in rows]})


@bp.get("/residents/<resident_id>")
def resident(resident_id: str) -> Response:
    now = _now()
    with get_runtime().sessions() as s:
        found = s.scalar(
            select(Resident).where(Resident.id == resident_id, _scope().residents(Resident.id))
        )
        if found is None:
            _refuse("resident", resident_id)
        devices = s.execute(
            _devices_query(now).where(Device.resident_id == resident_id).order_by(Device.id)
        ).all()
        routines = s.scalars(
            select(Routine).where(Routine.resident_id == resident_id).order_by(Routine.id)
        ).all()
        away = s.scalars(
            select(AwayPeriod)
            .where(AwayPeriod.resident_id == resident_id)
            .order_by(AwayPeriod.first_day)
        ).all()
        return jsonify(
            {
                **_resident(found),
                "devices": [_device(row) for row in devices],
                "routines": [_routine(r) for r in routines],
                "away": [
                    {"from": a.first_day.isoformat(), "to": a.last_day.isoformat()} for a in away
                ],
            }
        )


def _resident(r: Resident) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "building": r.building,
        "unit": r.unit,
        "timezone": r.timezone,
        "active": r.active,
    }


def _routine(r: Routine) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "start": r.start,
        "end": r.end,
        "grace_s": r.grace_s,
        "hours": r.hours,
        "timezone": r.timezone,
        "active": r.active,
        "next_due_at": _iso(r.next_due_at),
    }


# -- devices -----------------------------------------------------------------------------------


@bp.get("/devices")
def devices() -> Response:
    now = _now()
    q = _devices_query(now).where(_scope().residents(Device.resident_id))
    status = request.args.get("status")
    if status is not None:
        if status not in DEVICE_STATUSES:
            fail(400, f"unknown status {status!r}", field="status", allowed=list(DEVICE_STATUSES))
        q = q.where(device_offline(now) if status == "offline" else device_low_battery())
    resident_id = request.args.get("resident")
    if resident_id is not None:
        q = q.where(Device.resident_id == resident_id)
    with get_runtime().sessions() as s:
        rows = s.execute(q.order_by(Resident.building, Resident.unit, Device.id)).all()
    return jsonify({"devices": [_device(row) for row in rows]})


def _devices_query(now: datetime) -> Select[Device, str, bool, bool]:
    return select(
        Device,
        Resident.building,
        device_offline(now).label("offline"),
        device_low_battery().label("low_battery"),
    ).join(Resident, Resident.id == Device.resident_id)


def _device(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    d: Device = row[0]
    offline = bool(row.offline)
    return {
        "id": d.id,
        "resident": d.resident_id,
        "building": row.building,
        "kind": d.kind,
        "state": d.state,
        "last_seen": _iso(d.last_seen),
        "battery": d.battery,
        # By the engine's rule (reported offline, or silent too long); null: never heard
        # from yet, but still within the grace a new device gets.
        "online": False if offline else (None if d.last_seen is None else True),
        "low_battery": bool(row.low_battery),
    }


# -- alerts ------------------------------------------------------------------------------------

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
    q = _alerts_query(_scope())
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
    since, until = _time_arg("since"), _time_arg("until")
    if since is not None:
        q = q.where(Alert.raised_at >= since)
    if until is not None:
        q = q.where(Alert.raised_at < until)
    limit = _limit_arg(*ALERTS_LIMIT)
    cursor = _cursor_arg()
    if cursor is not None:
        q = q.where(_before(Alert.raised_at, Alert.id, cursor))
    q = q.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit + 1)
    with get_runtime().sessions() as s:
        rows = s.execute(q).all()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1][0] if more else None
    return jsonify(
        {
            "alerts": [_alert(row) for row in page],
            "next_cursor": _cursor(last.raised_at, last.id) if last else None,
        }
    )


@bp.get("/alerts/<int:alert_id>")
def alert(alert_id: int) -> Response:
    with get_runtime().sessions() as s:
        return jsonify(_alert_with_notes(s, _scope(), alert_id))


@bp.post("/alerts/<int:alert_id>/claim")
def claim_alert(alert_id: int) -> Response:
    """ "I'm going": 200 with the alert (also when the caller had already claimed it), 409
    if someone else claimed it first or it is resolved."""
    scope = _acting_scope()
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.sessions.begin() as s:
        found = _alert_row(s, scope, alert_id)
        if not (found.status == "claimed" and found.claimed_by == scope.actor):
            remind = timedelta(seconds=runtime.settings.claim_timeout_s)
            if not claim(s, alert_id, scope.actor, now, remind):
                s.refresh(found)
                _conflict(found, scope)
            _audit(s, now, scope, "alert.claim", alert_id, "claimed through the API")
    with runtime.sessions() as s:
        return jsonify(_alert_with_notes(s, scope, alert_id))


@bp.post("/alerts/<int:alert_id>/resolve")
def resolve_alert(alert_id: int) -> Response:
    """Close the alert with what was found: body ``{"outcome": one of OUTCOMES, "note": "..."}``
    (note optional, at most NOTE_MAX characters). A volunteer cannot close an alert someone
    else has claimed (409); staff can close anything."""
    scope = _acting_scope()
    outcome, note = _resolution_body()
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.sessions.begin() as s:
        found = _alert_row(s, scope, alert_id)
        if found.status == "resolved" or (
            found.status == "claimed" and found.claimed_by != scope.actor and not scope.sees_all
        ):
            _conflict(found, scope)
        if not resolve(s, alert_id, scope.actor, outcome, note, now):
            s.refresh(found)
            _conflict(found, scope)
        _audit(s, now, scope, "alert.resolve", alert_id, f"resolved through the API: {outcome}")
    with runtime.sessions() as s:
        return jsonify(_alert_with_notes(s, scope, alert_id))


def _acting_scope() -> Scope:
    scope = _scope()
    if not scope.can_act:
        fail(403, f"a {scope.role} user may see alerts but not claim or resolve them")
    return scope


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


def _alert_row(s: Session, scope: Scope, alert_id: int) -> Alert:
    found = s.scalar(select(Alert).where(Alert.id == alert_id, scope.residents(Alert.resident_id)))
    if found is None:
        _refuse("alert", alert_id, scope)
    return found


def _alert_with_notes(s: Session, scope: Scope, alert_id: int) -> dict[str, Any]:
    row = s.execute(_alerts_query(scope).where(Alert.id == alert_id)).first()
    if row is None:
        _refuse("alert", alert_id, scope)
    notes = s.scalars(
        select(AlertNote).where(AlertNote.alert_id == alert_id).order_by(AlertNote.at)
    ).all()
    return {
        **_alert(row),
        "notes": [{"author": n.author, "text": n.text, "at": _iso(n.at)} for n in notes],
    }


def _conflict(found: Alert, scope: Scope) -> NoReturn:
    if found.status == "resolved":
        fail(
            409,
            "the alert is already resolved",
            status="resolved",
            resolved_by=found.resolved_by,
            resolved_at=_iso(found.resolved_at),
        )
    fail(
        409,
        "someone else has claimed the alert",
        status=found.status,
        claimed_by=found.claimed_by,
        claimed_at=_iso(found.claimed_at),
    )


def _audit(
    s: Session, now: datetime, scope: Scope, action: str, alert_id: int, detail: str
) -> None:
    s.add(
        AuditEntry(
            at=now, actor=scope.actor, action=action, target=f"alert:{alert_id}", detail=detail
        )
    )


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
        "due_at": _iso(a.due_at),
        "raised_at": _iso(a.raised_at),
        "last_raised_at": _iso(a.last_raised_at),
        "repeats": a.repeats,
        "escalation_level": a.escalation_level,
        "claimed_by": a.claimed_by,
        "claimed_by_name": claimer,
        "claimed_at": _iso(a.claimed_at),
        "resolved_by": a.resolved_by,
        "resolved_by_name": resolver,
        "resolved_at": _iso(a.resolved_at),
        "outcome": a.outcome,
        "note": a.note,
        "delivery_problem": a.delivery_problem,
    }


# -- events ------------------------------------------------------------------------------------


@bp.get("/events")
def events() -> Response:
    scope = _scope()
    q = select(Event).where(scope.residents(Event.resident_id))
    resident_id = request.args.get("resident")
    if resident_id is None and not scope.sees_all:
        fail(400, "resident is required (events?resident=<id>)", field="resident")
    since, until = _time_arg("since"), _time_arg("until")
    limit = _limit_arg(*EVENTS_LIMIT)
    cursor = _cursor_arg()
    with get_runtime().sessions() as s:
        if resident_id is not None:
            if not scope.may_see(s, resident_id):
                _refuse("resident", resident_id, scope)
            q = q.where(Event.resident_id == resident_id)
        if since is not None:
            q = q.where(Event.ts >= since)
        if until is not None:
            q = q.where(Event.ts < until)
        if cursor is not None:
            q = q.where(_before(Event.ts, Event.id, cursor))
        q = q.order_by(Event.ts.desc(), Event.id.desc()).limit(limit + 1)
        rows = s.scalars(q).all()
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        {
            "events": [
                {
                    "id": e.id,
                    "resident": e.resident_id,
                    "device": e.device_id,
                    "kind": e.kind,
                    "value": e.value,
                    "ts": _iso(e.ts),
                    "received_at": _iso(e.received_at),
                }
                for e in page
            ],
            "next_cursor": _cursor(page[-1].ts, page[-1].id) if more else None,
        }
    )


# -- anything else under /api/v1 ---------------------------------------------------------------

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/", defaults={"rest": ""}, methods=_METHODS)
@bp.route("/<path:rest>", methods=_METHODS)
def unknown(rest: str) -> NoReturn:
    """JSON, not an HTML page, for a path or method the API does not have (the app's own
    404/405 pages would answer otherwise)."""
    adapter = current_app.create_url_adapter(request)
    allowed = []
    for method in _METHODS:
        if method == request.method or adapter is None:
            continue
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != "api.unknown":
            allowed.append(method)
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    raise NotFound(f"the API has no {request.path}")


# -- helpers -----------------------------------------------------------------------------------


def _refuse(what: str, ident: object, scope: Scope | None = None) -> NoReturn:
    scope = scope or _scope()
    if scope.sees_all:
        fail(404, f"there is no {what} {ident}")
    fail(403, f"{what} {ident} is not one you may see")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if "T" in raw and " " in raw:
        raw = raw.replace(" ", "+")  # an offset whose "+" was not URL-encoded
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        fail(
            400,
            f"{name} is not an ISO 8601 time: {raw!r} (e.g. 2026-11-23T07:00:00+08:00)",
            field=name,
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=community_zone())
    return value


def _limit_arg(default: int, maximum: int) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        fail(400, f"limit must be a whole number from 1 to {maximum}", field="limit", max=maximum)
    return value


def _cursor(at: datetime, row_id: int) -> str:
    raw = json.dumps([_iso(at), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_arg() -> tuple[datetime, int] | None:
    raw = request.args.get("cursor")
    if not raw:
        return None
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError(row_id)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        fail(400, "cursor is not one this API gave out", field="cursor")
    return when, row_id


def _before(ts_col: Any, id_col: Any, cursor: tuple[datetime, int]) -> Any:
    """Rows after the cursor in (time desc, id desc) order."""
    at, row_id = cursor
    return or_(ts_col < at, and_(ts_col == at, id_col < row_id))
