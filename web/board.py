"""The today board (`/`): every resident the user may see as a coloured tile, by building,
with a filter bar (building, status, with counts) and a legend. `/board/tiles` answers the
same filters with just the live part (filter bar and tiles) for web/static/board.js, which
polls it every few seconds; its ETag is a digest of the board's data, so an unchanged board
costs a 304 with no body and no rendering. The board itself is computed by
monitor.pages.board.compute_board; this module reads the request and renders."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup

from monitor.pages.board import STATUSES, Board, Group, Tile, compute_board
from web.auth import scope
from web.helpers import community_zone, get_runtime

bp = Blueprint("board", __name__)

POLL_MS = 3000


@bp.route("/")
@login_required
def index() -> str:
    board = _board()
    building, status = _filters()
    return render_template(
        "dash/board.html",
        poll_ms=POLL_MS,
        etag=_etag(board, building, status),
        updated=format_datetime(board.now, "HH:mm:ss"),
        **_live_context(board, building, status),
    )


@bp.route("/board/tiles")
def tiles() -> Response:
    """The live part of the board for the same query string; 304 when unchanged. A 401
    (not a redirect to the login page) when signed out, so the page can say so."""
    if not current_user.is_authenticated:
        return Response("signed out", status=401, mimetype="text/plain")
    board = _board()
    building, status = _filters()
    etag = _etag(board, building, status)
    if request.if_none_match.contains_weak(etag):
        resp = Response(status=304)
    else:
        body = render_template("dash/board_live.html", **_live_context(board, building, status))
        resp = Response(body, mimetype="text/html")
    resp.set_etag(etag, weak=True)
    resp.headers["X-Board-Time"] = format_datetime(board.now, "HH:mm:ss")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _board() -> Board:
    with get_runtime().sessions() as session:
        return compute_board(session, scope(), get_runtime().clock.now(), community_zone())


def _filters() -> tuple[str | None, str | None]:
    building = request.args.get("building") or None
    status = request.args.get("status")
    return building, status if status in STATUSES else None


def _etag(board: Board, building: str | None, status: str | None) -> str:
    """A digest of what the live part shows: tiles (all of them: the counts depend on every
    one), the filters and the language. Python's hash is per process, so after a restart a
    browser's first poll is simply a full answer."""
    digest = hash((board.day, board.tiles, building, status, str(get_locale())))
    return f"b{digest & 0xFFFFFFFFFFFFFFFF:016x}"


def _live_context(board: Board, building: str | None, status: str | None) -> dict[str, Any]:
    render = _tile_html()
    groups: list[tuple[Group, Markup]] = [
        (g, Markup("".join([render(t) for t in g.tiles]))) for g in board.groups(building, status)
    ]
    return {
        "board": board,
        "groups": groups,
        "status_names": render.render.status_names,
        "building": building,
        "status": status,
        "statuses": STATUSES,
        "status_counts": board.status_counts(building),
        "building_counts": board.building_counts(),
        "total": len(board.tiles),
    }


class _Memo:
    """Rendered tiles by their content, per language and link pattern: a board polled every
    few seconds renders nearly the same 10,000 tiles each time. A tile's HTML depends only
    on the Tile (every field) and the TileHtml labels, so nothing can go stale; entries not
    used for a while are dropped when the memo outgrows MEMO_MAX."""

    def __init__(self, render: TileHtml) -> None:
        self.render = render
        self.html: dict[Tile, str] = {}

    def __call__(self, tile: Tile) -> str:
        done = self.html.get(tile)
        if done is None:
            if len(self.html) >= MEMO_MAX:
                self.html.clear()  # crude, but bounded; the next renders refill it
            done = self.html[tile] = self.render(tile)
        return done


MEMO_MAX = 50_000
_MEMOS: dict[tuple[str, str, str], _Memo] = {}


def _tile_html() -> _Memo:
    before, after = _resident_url()
    key = (str(get_locale()), before, after)
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = _Memo(TileHtml(before, after))
    return memo


def _resident_url() -> tuple[str, str]:
    """(before, after) the resident id in a resident page's URL, built once per page: a
    url_for per tile costs more than the rest of the tile."""
    marker = "RESIDENTID"
    if "residents.show" in current_app.view_functions:
        url = url_for("residents.show", resident_id=marker)
    else:
        url = f"/residents/{marker}"
    before, _sep, after = url.partition(marker)
    return before, after


class TileHtml:
    """One tile as HTML. In Python rather than in the template: a board of 10,000 tiles
    rendered by Jinja took ~0.5 s, this takes under a tenth. Every label is translated and
    escaped once per request; per tile only the resident's own fields are escaped."""

    def __init__(self, url_before: str, url_after: str) -> None:
        e = _esc
        self.url_before, self.url_after = e(url_before), e(url_after)
        self.status_names = {
            "red": _("Alert"),
            "amber": _("Waiting"),
            "grey": _("Uncertain"),
            "green": _("All well"),
        }
        self.badge = {s: e(n) for s, n in self.status_names.items()}
        self.alerts = {
            "help": e(_("Help card shows help")),
            "inactivity": e(_("No activity for many hours")),
            "missed_routine": e(_("A routine was missed")),
        }
        self.missed = {
            "curtain_open": e(_("Curtain did not open in time")),
            "curtain_close": e(_("Curtain did not close in time")),
            "light_on": e(_("Light did not come on in time")),
            "door": e(_("Door not used in its window")),
            "activity": e(_("No activity in its window")),
        }
        self.waiting = {
            "curtain_open": e(_("Waiting for the curtain to open")),
            "curtain_close": e(_("Waiting for the curtain to close")),
            "light_on": e(_("Waiting for the light to come on")),
            "door": e(_("Waiting for the door to be used")),
            "activity": e(_("Waiting for any activity")),
        }
        self.away = e(_("Away today"))
        self.sensor = e(_("Sensor problem: today cannot be judged"))
        self.sensor_too = e(_("Also a sensor problem"))
        self.ok = e(_("All well so far"))
        self.overdue = e(_("Time is up: being checked now"))
        self.unclaimed = e(_("Nobody has claimed it yet"))
        # Placeholders that survive translation, filled per tile.
        self.claimed = e(_("Claimed by %(name)s", name="\x00"))
        self.checks = e(_("%(ok)s of %(n)s checks passed today", ok="\x01", n="\x02"))
        self.opened = e(_("Curtain open"))
        self.closed = e(_("Curtain closed"))
        self.light = e(_("Light on"))
        self.door = e(_("Door"))

    def why(self, t: Tile) -> str:
        if t.reason == "alert":
            kind = t.alert_kind or ""
            return self.missed.get(t.alert_routine or "") or self.alerts.get(kind, _esc(kind))
        if t.reason == "away":
            return self.away
        if t.reason == "sensor":
            return self.sensor
        if t.reason in ("waiting", "overdue"):
            return self.waiting.get(t.detail or "", _esc(t.detail or ""))
        return self.ok

    def __call__(self, t: Tile) -> str:
        rid = _esc(t.resident_id)
        href = rid if _URL_SAFE.fullmatch(t.resident_id) else _esc(quote(t.resident_id, safe=""))
        notes = ""
        if t.reason == "overdue":
            notes = f'<span class="t-note">{self.overdue}</span>'
        if t.alert_kind:
            if t.alert_claimed:
                claimer = self.claimed.replace("\x00", _esc(t.claimed_by or "?"))
                notes += f'<span class="t-note">{claimer}</span>'
            else:
                notes += f'<span class="t-note">{self.unclaimed}</span>'
        if t.sensor_problem and t.reason != "sensor":
            notes += f'<span class="t-note">{self.sensor_too}</span>'
        times = ""
        if t.curtain_opened:
            times = f"<span>{self.opened} {t.curtain_opened}</span>"
        if t.curtain_closed:
            times += f"<span>{self.closed} {t.curtain_closed}</span>"
        if t.light_on:
            times += f"<span>{self.light} {t.light_on}</span>"
        if t.door:
            times += f"<span>{self.door} {t.door}</span>"
        if times:
            times = f'<span class="t-times">{times}</span>'
        if t.settled:
            checks = self.checks.replace("\x01", str(t.satisfied)).replace("\x02", str(t.settled))
            times += f'<span class="t-checks">{checks}</span>'
        return (
            f'<li class="tile s-{t.status}" id="t-{rid}"><a href="{self.url_before}{href}'
            f'{self.url_after}"><span class="t-top"><span class="t-badge">'
            f'{self.badge[t.status]}</span> <span class="t-unit">{_esc(t.unit)}</span></span>'
            f'<strong class="t-name">{_esc(t.name)}</strong><span class="t-why">{self.why(t)}'
            f"</span>{notes}{times}</a></li>"
        )


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def _esc(text: str) -> str:
    """HTML-escaped text (quotes too): html.escape is a few str.replace calls, several
    times cheaper than markupsafe.escape for the 40,000 strings of a large board."""
    return html.escape(text, quote=True)
