"""Devices and data quality, for staff: what needs a look (offline, never heard from, battery
low), every device with a filter, ids heard on MQTT that no resident has (each with a one-
click "assign to resident as kind" form), and the payloads we could not read. The rules and
queries live in monitor.admin.devices; after a change the ingestor's registry is reloaded so
the next reading of the device is read with its new owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_timedelta
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from monitor.admin import devices as da
from monitor.admin.forms import AdminError
from monitor.importing.community import DEVICE_KINDS
from monitor.rules.device_health import LOW_BATTERY
from web.auth import scope, staff_required
from web.helpers import get_runtime

bp = Blueprint("devices", __name__, url_prefix="/devices")

PER_PAGE = 100
DEAD_PER_PAGE = 50


def ago(moment: datetime | None, now: datetime) -> str:
    """ "3h ago", in the page's language ("" for never)."""
    if moment is None:
        return ""
    return format_timedelta(
        moment - now, add_direction=True, format="narrow", locale=get_locale() or "en"
    )


def _int_arg(name: str) -> int:
    value = request.args.get(name, "1")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


def problems_text(problems: dict[str, tuple[str, Any]]) -> list[str]:
    """An AdminError's messages, translated."""
    return [_(msgid, **dict(params)) for msgid, params in problems.values()]


def _common(active: str) -> dict[str, Any]:
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.sessions() as s:
        summary = da.summary(s, scope(), now)
    return {"summary": summary, "tab": active, "now_utc": now, "ago": ago}


@bp.route("/")
@staff_required
def index() -> str:
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.sessions() as s:
        problems = da.problem_devices(s, scope(), now)
        unknown = da.unknown_devices(s)
        residents = da.residents_for_select(s) if unknown else []
        unknown_rows = [
            (u, *da.payload_text(u.last_payload.encode("utf-8", "replace"), 200)) for u in unknown
        ]
    return render_template(
        "dash/devices.html",
        problems=problems,
        unknown=unknown_rows,
        residents=residents,
        kinds=DEVICE_KINDS,
        low_battery=LOW_BATTERY,
        **_common("index"),
    )


@bp.route("/all")
@staff_required
def all_devices() -> str:
    runtime = get_runtime()
    now = runtime.clock.now()
    filters = {
        "q": request.args.get("q", "")[:200],
        "kind": request.args.get("kind", ""),
        "building": request.args.get("building", "")[:64],
        "status": request.args.get("status", ""),
    }
    with runtime.sessions() as s:
        page = da.list_devices(s, scope(), now, **filters, page=_int_arg("page"), per_page=PER_PAGE)
    return render_template(
        "dash/devices_all.html",
        page=page,
        filters=filters,
        kinds=DEVICE_KINDS,
        statuses=da.STATUSES,
        **_common("all"),
    )


@bp.route("/dead-letters")
@staff_required
def dead_letters() -> str:
    runtime = get_runtime()
    topic = request.args.get("topic", "")[:400]
    with runtime.sessions() as s:
        page = da.dead_letters(s, topic=topic, page=_int_arg("page"), per_page=DEAD_PER_PAGE)
    return render_template("dash/devices_dead.html", page=page, topic=topic, **_common("dead"))


@bp.route("/unknown/assign", methods=["POST"])
@staff_required
def assign() -> Response | tuple[str, int]:
    runtime = get_runtime()
    device_id = request.form.get("device_id", "")
    resident_id = request.form.get("resident_id", "")
    kind = request.form.get("kind", "")
    try:
        with runtime.sessions.begin() as s:
            da.assign_unknown(s, device_id, resident_id, kind, scope().actor, runtime.clock.now())
    except AdminError as e:
        for message in problems_text(e.problems):
            flash(message, "error")
        return redirect(url_for("devices.index"), code=303)
    runtime.ingestor.reload_registry()
    flash(
        _(
            "%(device)s now belongs to %(resident)s as a %(kind)s device.",
            device=device_id,
            resident=resident_id,
            kind=device_kind_label(kind),
        )
    )
    return redirect(url_for("devices.index"), code=303)


@bp.app_template_global("device_kind_label")
def device_kind_label(kind: str) -> str:
    """A device kind in the page's language (the stored value stays the English kind)."""
    labels = {
        "curtain": _("curtain"),
        "door": _("door"),
        "light": _("light"),
        "help": _("help card"),
        "motion": _("motion"),
        "contact": _("contact"),
        "power": _("power"),
        "water": _("water"),
    }
    return labels.get(kind, kind)
