"""/api/v1 events: a resident's stored sensor events (all residents' for staff), newest
first, a page at a time."""

from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from monitor.models import Event
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

EVENTS_LIMIT = (100, 1000)


@bp.get("/events")
def events() -> Response:
    scope = caller_scope()
    q = select(Event).where(scope.residents(Event.resident_id))
    resident_id = request.args.get("resident")
    if resident_id is None and not scope.sees_all:
        fail(400, "resident is required (events?resident=<id>)", field="resident")
    since, until = time_arg("since"), time_arg("until")
    limit = limit_arg(*EVENTS_LIMIT)
    cursor = cursor_arg()
    with get_runtime().sessions() as s:
        if resident_id is not None:
            if not scope.may_see(s, resident_id):
                refuse("resident", resident_id, scope)
            q = q.where(Event.resident_id == resident_id)
        if since is not None:
            q = q.where(Event.ts >= since)
        if until is not None:
            q = q.where(Event.ts < until)
        if cursor is not None:
            q = q.where(before(Event.ts, Event.id, cursor))
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
                    "ts": iso(e.ts),
                    "received_at": iso(e.received_at),
                }
                for e in page
            ],
            "next_cursor": next_cursor(page[-1].ts, page[-1].id) if more else None,
        }
    )
