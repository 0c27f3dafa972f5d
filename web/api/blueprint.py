"""The api blueprint (/api/v1) and what its endpoints share: errors as JSON, the bearer-token
check before every request, the caller's scope, and reading times, limits and cursors from
the query string. The endpoints are in the other modules of web.api."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import and_, or_
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from monitor.access import Scope, scope_for
from monitor.admin.users import user_for_token
from web.helpers import community_zone, get_runtime

bp = Blueprint("api", __name__, url_prefix="/api/v1")

REALM = "curtainwatch"


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


def caller_scope() -> Scope:
    scope: Scope = g.api_scope
    return scope


def clock_now() -> datetime:
    return get_runtime().clock.now()


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


def refuse(what: str, ident: object, scope: Scope | None = None) -> NoReturn:
    scope = scope or caller_scope()
    if scope.sees_all:
        fail(404, f"there is no {what} {ident}")
    fail(403, f"{what} {ident} is not one you may see")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def time_arg(name: str) -> datetime | None:
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


def limit_arg(default: int, maximum: int) -> int:
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


def next_cursor(at: datetime, row_id: int) -> str:
    raw = json.dumps([iso(at), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_arg() -> tuple[datetime, int] | None:
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


def before(ts_col: Any, id_col: Any, cursor: tuple[datetime, int]) -> Any:
    """Rows after the cursor in (time desc, id desc) order."""
    at, row_id = cursor
    return or_(ts_col < at, and_(ts_col == at, id_col < row_id))
