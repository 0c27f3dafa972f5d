"""Resident pages: the list of residents in scope, and one resident's page (contact details,
devices, routines with today's outcome, away periods, today's timeline and the 30-day
chart), with forms for staff to change routines and away periods.

Who sees what: staff and admins everything, and they alone get the edit forms; a volunteer
sees the residents of their buildings, contact details included (they are the ones who
knock); a family member sees only their relative's page, read-only, without the contact
block (phone, contact person, staff notes: written for the people who visit, and the
contact person is usually the family member themselves).

Thin views: monitor.pages.history reads, monitor.admin.routines validates and writes, web.chart
draws."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as babel_datetime
from babel.dates import format_timedelta
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.wrappers import Response

from monitor.admin.routines import (
    EditResult,
    Problem,
    RoutineForm,
    add_away,
    edit_routine,
    format_duration,
    remove_away,
)
from monitor.pages.history import (
    TimelineItem,
    buildings_in_scope,
    resident_list,
    resident_page,
)
from web.auth import resident_or_403, scope
from web.chart import history_svg, summary_text
from web.helpers import community_zone, get_runtime

bp = Blueprint("residents", __name__, url_prefix="/residents")

ROUTINE_LABELS = {
    "curtain_open": _l("Curtain opens"),
    "curtain_close": _l("Curtain closes"),
    "light_on": _l("Light on"),
    "door": _l("Door opens"),
    "activity": _l("Any activity"),
    "inactivity": _l("Inactivity check"),
    "help": _l("Help card"),
}
DEVICE_LABELS = {
    "curtain": _l("Curtain"),
    "door": _l("Door"),
    "light": _l("Light"),
    "help": _l("Help card"),
    "motion": _l("Motion sensor"),
    "contact": _l("Contact sensor"),
    "power": _l("Power plug"),
    "water": _l("Water meter"),
}
STATE_LABELS = {
    "open": _l("open"),
    "closed": _l("closed"),
    "on": _l("on"),
    "off": _l("off"),
    "help": _l("asking for help"),
    "ok": _l("all well"),
    "active": _l("movement"),
    "idle": _l("still"),
}
STATUS_LABELS = {
    "online": (_l("online"), "green"),
    "offline": (_l("offline"), "red"),
    "silent": (_l("silent"), "amber"),
    "never": (_l("never seen"), "grey"),
}
OUTCOME_LABELS = {
    "satisfied": (_l("done"), "green"),
    "missed": (_l("missed"), "red"),
    "away": (_l("away"), "grey"),
    "unknown": (_l("unknown: sensor silent"), "amber"),
    "pending": (_l("not yet"), "grey"),
    "paused": (_l("paused"), "grey"),
}
EVENT_TEXT = {
    ("curtain", "open"): _l("curtain opened"),
    ("curtain", "closed"): _l("curtain closed"),
    ("door", "open"): _l("door opened"),
    ("door", "closed"): _l("door closed"),
    ("light", "on"): _l("light on"),
    ("light", "off"): _l("light off"),
    ("help", "help"): _l("help card flipped"),
    ("help", "ok"): _l("help card turned back"),
    ("motion", "active"): _l("movement"),
    ("motion", "idle"): _l("movement stopped"),
    ("contact", "open"): _l("opened"),
    ("contact", "closed"): _l("closed"),
    ("power", "on"): _l("appliance on"),
    ("power", "off"): _l("appliance off"),
    ("water", "on"): _l("water running"),
    ("water", "off"): _l("water stopped"),
}
ALERT_LABELS = {
    "missed_routine": _l("missed routine"),
    "help": _l("help card"),
    "inactivity": _l("no activity"),
    "device_offline": _l("device offline"),
    "low_battery": _l("low battery"),
    "system": _l("system problem"),
}
RESOLUTION_LABELS = {
    "late": _l("late check-in"),
    "activity_resumed": _l("activity resumed"),
    "back_online": _l("back online"),
    "battery_replaced": _l("battery replaced"),
}
# The sentence for each problem code monitor.admin.routines reports.
PROBLEMS = {
    "required": _l("Enter a time like 07:30."),
    "time": _l('"%(value)s" is not a time; write it as HH:MM, from 00:00 to 23:59.'),
    "window_empty": _l("The window must end after it starts."),
    "window_backwards": _l(
        "The window ends before it starts. A window can run past midnight only from a start "
        "at 12:00 or later to an end at 12:00 or earlier."
    ),
    "duration": _l('"%(value)s" is not a duration; write it like 15m, 1h or 1h30m.'),
    "duration_long": _l('"%(value)s" is longer than a week.'),
    "hours": _l('"%(value)s" is not a number of hours (more than 0, at most 168).'),
    "date": _l('"%(value)s" is not a date; write it as YYYY-MM-DD.'),
    "away_order": _l("The last day is before the first day."),
    "away_past": _l("This period is already over."),
    "away_long": _l("An away period can last at most a year."),
    "away_overlap": _l("It overlaps the away period %(first)s to %(last)s."),
    "not_found": _l("It is not there any more; reload the page."),
    "not_editable": _l("This routine has nothing to change."),
}


@bp.route("/")
@login_required
def index() -> str:
    query = request.args.get("q", "")[:100]
    building = request.args.get("building", "")[:64]
    with get_runtime().sessions() as s:
        rows, total = resident_list(s, scope(), query, building)
        buildings = buildings_in_scope(s, scope())
    return render_template(
        "dash/residents.html",
        rows=rows,
        total=total,
        query=query,
        building=building,
        buildings=buildings,
    )


@bp.route("/<resident_id>")
@login_required
def show(resident_id: str) -> str:
    return _render_show(resident_id)


@bp.route("/<resident_id>/routines/<int:routine_id>", methods=["POST"])
@login_required
def change_routine(resident_id: str, routine_id: int) -> Response | tuple[str, int]:
    _may_edit(resident_id)
    f = request.form
    form = RoutineForm(
        start=f.get("start"),
        end=f.get("end"),
        grace=f.get("grace"),
        hours=f.get("hours"),
        # A checkbox sends nothing when unticked; the hidden "off" before it says so.
        active=f.getlist("active")[-1] == "on" if "active" in f else None,
    )
    runtime = get_runtime()
    with runtime.sessions.begin() as s:
        result = edit_routine(s, resident_id, routine_id, form, scope().actor, runtime.clock.now())
    if not result.ok:
        return _render_show(resident_id, {f"routine-{routine_id}": result}, dict(f)), 400
    flash(_("Routine saved.") if result.changes else _("Nothing changed."), "info")
    return redirect(url_for(".show", resident_id=resident_id, _anchor="routines"))


@bp.route("/<resident_id>/away", methods=["POST"])
@login_required
def add_away_period(resident_id: str) -> Response | tuple[str, int]:
    _may_edit(resident_id)
    runtime = get_runtime()
    first, last = request.form.get("first_day", ""), request.form.get("last_day", "")
    with runtime.sessions.begin() as s:
        result = add_away(s, resident_id, first, last, scope().actor, runtime.clock.now())
    if not result.ok:
        return _render_show(resident_id, {"away": result}, dict(request.form)), 400
    flash(_("Away from %(first)s to %(last)s added.", first=first.strip(), last=last.strip()))
    return redirect(url_for(".show", resident_id=resident_id, _anchor="away"))


@bp.route("/<resident_id>/away/<int:away_id>/delete", methods=["POST"])
@login_required
def delete_away_period(resident_id: str, away_id: int) -> Response | tuple[str, int]:
    _may_edit(resident_id)
    runtime = get_runtime()
    with runtime.sessions.begin() as s:
        result = remove_away(s, resident_id, away_id, scope().actor, runtime.clock.now())
    if not result.ok:
        return _render_show(resident_id, {"away": result}, {}), 400
    flash(_("Away period removed."))
    return redirect(url_for(".show", resident_id=resident_id, _anchor="away"))


def _may_edit(resident_id: str) -> None:
    if not scope().can_edit:
        abort(403)
    resident_or_403(resident_id)


def _render_show(
    resident_id: str,
    results: dict[str, EditResult] | None = None,
    typed: dict[str, str] | None = None,
) -> str:
    resident_or_403(resident_id)
    runtime = get_runtime()
    now = runtime.clock.now()
    with runtime.sessions() as s:
        page = resident_page(s, resident_id, now)
    if page is None:
        abort(404)
    user_scope = scope()
    errors = {form: _problems_by_field(result.problems) for form, result in (results or {}).items()}
    return render_template(
        "dash/resident.html",
        page=page,
        r=page.resident,
        can_edit=user_scope.can_edit,
        show_contact=user_scope.role != "family",
        chart=history_svg(page.series, page.stats),
        summary=summary_text(page.stats),
        errors=errors,
        typed=typed or {},
        at=_formatter(page.zone),
        ago=lambda moment: _ago(moment, now),
        event_text=_event_text,
        other_zone=page.zone.key != community_zone().key,
        labels={
            "routine": ROUTINE_LABELS,
            "device": DEVICE_LABELS,
            "state": STATE_LABELS,
            "status": STATUS_LABELS,
            "outcome": OUTCOME_LABELS,
            "alert": ALERT_LABELS,
        },
        duration=format_duration,
        timeline_truncated=page.timeline_truncated,
    )


def _problems_by_field(problems: list[Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        template = PROBLEMS.get(p.code)
        text = str(template) % p.params if template is not None else p.message
        out.setdefault(p.field, []).append(text)
    return out


def _formatter(zone: ZoneInfo) -> Callable[[datetime | None, str], str]:
    """Times on this page are in the resident's own zone (usually the community's)."""

    def at(moment: datetime | None, pattern: str = "HH:mm") -> str:
        if moment is None:
            return ""
        return str(babel_datetime(moment, pattern, tzinfo=zone, locale=get_locale()))

    return at


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    if abs(now - moment) < timedelta(minutes=1):
        return _("just now")
    return str(
        format_timedelta(moment - now, add_direction=True, format="narrow", locale=get_locale())
    )


def _event_text(item: TimelineItem) -> str:
    """What happened, in words: "curtain opened", "Alert raised: help card"..."""
    if item.source == "event":
        label = EVENT_TEXT.get((item.kind, item.value))
        return str(label) if label is not None else f"{item.kind} {item.value}"
    if item.source == "window":
        outcome = OUTCOME_LABELS.get(item.value)
        return _(
            "%(routine)s window settled: %(outcome)s",
            routine=ROUTINE_LABELS.get(item.kind, item.kind),
            outcome=outcome[0] if outcome else item.value,
        )
    kind = ALERT_LABELS.get(item.kind, item.kind)
    if item.source == "alert":
        return _("Alert raised: %(kind)s", kind=kind)
    return _(
        "Alert resolved: %(kind)s (%(outcome)s)",
        kind=kind,
        outcome=RESOLUTION_LABELS.get(item.value, item.value),
    )
