"""The alerts queue and history for staff and volunteers: the open queue (oldest first, with
"I'm going", resolve and note forms), one alert's whole story, the history with filters
and pages, and its CSV export. Family members see their relative's alerts read-only.

What may be seen and done is decided by `alerts.queue` and `alerts.actions` under the
signed-in user's scope; this module reads the request, calls them, and turns their answers
and refusals into pages, flash messages and status codes."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import login_required
from werkzeug.wrappers import Response as BaseResponse

from alerts import actions, queue
from alerts.actions import Conflict, Invalid
from alerts.escalation import GROUPED, REMIND_CLAIMER, REMIND_STAFF
from alerts.queue import (
    ALL_OUTCOMES,
    KINDS,
    AlertLine,
    Forbidden,
    HistoryFilter,
    Missing,
)
from alerts.tokens import NOTE_MAX, OUTCOMES
from monitor.access import Scope
from web.auth import scope
from web.helpers import ALERT_OUTCOME_LABELS, community_zone, get_runtime, said

bp = Blueprint("alerts", __name__, url_prefix="/alerts")
T = TypeVar("T")

KIND_LABELS = {
    "help": _l("Help card"),
    "missed_routine": _l("Missed routine"),
    "inactivity": _l("No activity"),
    "device_offline": _l("Sensor offline"),
    "low_battery": _l("Low battery"),
    "system": _l("System"),
}
ROUTINE_LABELS = {
    "curtain_open": _l("Curtain not opened"),
    "curtain_close": _l("Curtain not closed"),
    "light_on": _l("Light not switched on"),
    "door": _l("Door not used"),
    "activity": _l("No activity in the usual window"),
    "inactivity": _l("No activity for many hours"),
}
SEVERITY_LABELS = {"critical": _l("Critical"), "warning": _l("Warning"), "info": _l("Info")}
SEVERITY_BADGE = {"critical": "red", "warning": "amber", "info": "grey"}
STATUS_LABELS = {"open": _l("Open"), "claimed": _l("Claimed"), "resolved": _l("Resolved")}
STATUS_BADGE = {"open": "red", "claimed": "amber", "resolved": "green"}
DELIVERY_LABELS = {
    "sent": _l("Sent"),
    "pending": _l("Pending"),
    "gave_up": _l("Gave up"),
    "skipped": _l("Not needed"),
}
DELIVERY_BADGE = {"sent": "green", "pending": "amber", "gave_up": "red", "skipped": "grey"}
CSV_TIME = "%Y-%m-%d %H:%M"


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def routine_label(kind: str | None) -> str:
    return str(ROUTINE_LABELS.get(kind, kind)) if kind else ""


def outcome_label(outcome: str | None) -> str:
    return str(ALERT_OUTCOME_LABELS.get(outcome, outcome)) if outcome else ""


def step_label(step: int) -> str:
    """A delivery's ladder step as people say it."""
    if step == REMIND_CLAIMER:
        return _("Reminder to the claimer")
    if step == REMIND_STAFF:
        return _("Reminder to staff")
    return _("Step %(n)s", n=step + 1)


def level_label(level: int) -> str:
    """How far an alert's ladder has gone."""
    if level == GROUPED:
        return _("Grouped into a system alert")
    if level == REMIND_CLAIMER:
        return _("Claimer reminded")
    if level == REMIND_STAFF:
        return _("Staff reminded")
    if level == 0:
        return _("Nobody notified yet")
    return _("Ladder steps taken: %(n)s", n=level)


def ago(when: datetime | None) -> str:
    if when is None:
        return ""
    minutes = max(0, int((get_runtime().clock.now() - when).total_seconds() // 60))
    if minutes < 60:
        return _("%(minutes)s min ago", minutes=minutes)
    if minutes < 48 * 60:
        return _("%(hours)s h %(minutes)s min ago", hours=minutes // 60, minutes=minutes % 60)
    return _("%(days)s days ago", days=minutes // (24 * 60))


def actor_label(line_actor: str | None, name: str | None) -> str:
    if not line_actor:
        return ""
    if line_actor == queue.SYSTEM_ACTOR:
        return _("curtainwatch (automatic)")
    return name or line_actor


@bp.app_template_global("alert_labels")
def _labels() -> dict[str, Any]:
    # Only the alerts templates use this; it saves passing a dozen helpers to every render call.
    return {
        "kind": kind_label,
        "routine": routine_label,
        "outcome": outcome_label,
        "severity": lambda s: str(SEVERITY_LABELS.get(s, s)),
        "severity_badge": lambda s: SEVERITY_BADGE.get(s, "grey"),
        "status": lambda s: str(STATUS_LABELS.get(s, s)),
        "status_badge": lambda s: STATUS_BADGE.get(s, "grey"),
        "delivery": lambda s: str(DELIVERY_LABELS.get(s, s)),
        "delivery_badge": lambda s: DELIVERY_BADGE.get(s, "grey"),
        "step": step_label,
        "level": level_label,
        "ago": ago,
        "actor": actor_label,
    }


def _here() -> str:
    """This page's path, where the forms on it come back to."""
    return request.full_path.rstrip("?")


def _forms(s: Scope) -> dict[str, Any]:
    """What every page with action buttons needs."""
    return {
        "can_act": s.can_act,
        "sees_all": s.sees_all,
        "actor": s.actor,
        "outcomes": [(o, str(ALERT_OUTCOME_LABELS[o])) for o in OUTCOMES],
        "note_max": NOTE_MAX,
    }


# Endpoint "alerts.queue" (the nav links to it); the function has another name so as not to
# shadow the alerts.queue module.
@bp.get("/", endpoint="queue")
@login_required
def queue_page() -> str:
    s = scope()
    with get_runtime().sessions() as session:
        q = queue.open_queue(session, s)
    return render_template("dash/alerts_queue.html", q=q, here=_here(), **_forms(s))


@bp.get("/<int:alert_id>")
@login_required
def show(alert_id: int) -> str:
    s = scope()
    with get_runtime().sessions() as session:
        a = _or_abort(lambda: queue.alert_detail(session, s, alert_id))
    return render_template("dash/alerts_show.html", a=a, story=story(a), here=_here(), **_forms(s))


@bp.post("/<int:alert_id>/claim")
@login_required
def claim(alert_id: int) -> BaseResponse:
    s = scope()
    rt = get_runtime()
    remind_after = timedelta(seconds=rt.settings.claim_timeout_s)
    try:
        with rt.sessions.begin() as session:
            claimed = _or_abort(
                lambda: actions.claim(session, s, alert_id, rt.clock.now(), remind_after)
            )
    except Conflict as e:
        _flash_conflict(alert_id, e)
    else:
        if claimed:
            flash(
                _(
                    "Alert #%(id)s is yours: nobody else is paged unless it stays open too long.",
                    id=alert_id,
                )
            )
        else:
            flash(_("You had already claimed alert #%(id)s.", id=alert_id))
    return _back(alert_id)


@bp.post("/<int:alert_id>/resolve")
@login_required
def resolve(alert_id: int) -> BaseResponse:
    s = scope()
    rt = get_runtime()
    outcome = request.form.get("outcome", "")
    try:
        with rt.sessions.begin() as session:
            _or_abort(
                lambda: actions.resolve(
                    session, s, alert_id, outcome, request.form.get("note", ""), rt.clock.now()
                )
            )
    except Conflict as e:
        _flash_conflict(alert_id, e)
    except Invalid as e:
        _flash_invalid(e)
    else:
        flash(
            _("Alert #%(id)s resolved: %(outcome)s.", id=alert_id, outcome=outcome_label(outcome))
        )
    return _back(alert_id)


@bp.post("/<int:alert_id>/note")
@login_required
def note(alert_id: int) -> BaseResponse:
    s = scope()
    rt = get_runtime()
    try:
        with rt.sessions.begin() as session:
            _or_abort(
                lambda: actions.add_note(
                    session, s, alert_id, request.form.get("text", ""), rt.clock.now()
                )
            )
    except Invalid as e:
        _flash_invalid(e)
    else:
        flash(_("Note added to alert #%(id)s.", id=alert_id))
    return _back(alert_id)


def _or_abort(action: Callable[[], T]) -> T:
    """Run an alerts.queue or alerts.actions call; refusals become 403/404 (conflicts and
    invalid input are the caller's to show)."""
    try:
        return action()
    except Forbidden:
        abort(403)
    except Missing:
        abort(404)


def _flash_conflict(alert_id: int, e: Conflict) -> None:
    name = e.other or "-"
    if e.reason == "resolved":
        flash(_("Alert #%(id)s was already resolved by %(name)s.", id=alert_id, name=name), "error")
    else:
        at = e.at.astimezone(community_zone()).strftime("%H:%M") if e.at else "-"
        flash(
            _("%(name)s claimed alert #%(id)s first (at %(at)s).", name=name, id=alert_id, at=at),
            "error",
        )


def _flash_invalid(e: Invalid) -> None:
    if e.problem == "choose":
        flash(_("Please choose what you found."), "error")
    elif e.problem == "empty":
        flash(_("The note is empty."), "error")
    else:
        flash(_("The note is too long (at most %(n)s characters).", n=NOTE_MAX), "error")


def _back(alert_id: int) -> BaseResponse:
    """Back to the page the form was on (only a page of this blueprint), else the alert."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc and target.startswith("/alerts"):
        return redirect(target, 303)
    return redirect(url_for("alerts.show", alert_id=alert_id), 303)


@dataclass(frozen=True)
class StoryLine:
    at: datetime
    text: str
    note: str = ""
    badge: str = ""


def story(a: AlertLine) -> list[StoryLine]:
    """The alert's life in time order: raised, repeats, each message, claim, notes,
    resolution."""
    lines = [StoryLine(a.raised_at, _("Raised."))]
    if a.repeats:
        lines.append(
            StoryLine(
                a.last_raised_at,
                ngettext(
                    "Raised again (%(num)s repeat in all).",
                    "Raised again (%(num)s repeats in all).",
                    a.repeats,
                ),
            )
        )
    for d in a.deliveries:
        lines.append(
            StoryLine(
                d.sent_at or d.created_at,
                _(
                    "%(step)s: message to %(name)s via %(scheme)s.",
                    step=step_label(d.step),
                    name=d.person_name,
                    scheme=d.scheme,
                ),
                badge=d.status,
            )
        )
    if a.claimed_at:
        lines.append(
            StoryLine(
                a.claimed_at,
                _("%(name)s is going.", name=actor_label(a.claimed_by, a.claimed_by_name)),
            )
        )
    for n in a.notes:
        lines.append(StoryLine(n.at, _("Note by %(name)s.", name=n.author_name), note=n.text))
    if a.resolved_at:
        lines.append(
            StoryLine(
                a.resolved_at,
                _(
                    "Resolved by %(name)s: %(outcome)s.",
                    name=actor_label(a.resolved_by, a.resolved_by_name),
                    outcome=outcome_label(a.outcome),
                ),
                note=said(a.note_message, a.note or ""),
            )
        )
    return sorted(lines, key=lambda line: line.at)


# ---- history and export -------------------------------------------------------------


def _filters() -> tuple[HistoryFilter, list[str]]:
    """The history filter from the query string; values that make no sense are dropped and
    reported, never an error page."""
    args = request.args
    errors: list[str] = []

    def day(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors.append(_("“%(value)s” is not a date (use YYYY-MM-DD).", value=raw))
            return None

    kind = args.get("kind", "")
    outcome = args.get("outcome", "")
    f = HistoryFilter(
        resident_id=args.get("resident", "").strip() or None,
        kind=kind if kind in KINDS else None,
        outcome=outcome if outcome in ALL_OUTCOMES else None,
        date_from=day("from"),
        date_to=day("to"),
        include_open=args.get("status") == "all",
    )
    if f.date_from and f.date_to and f.date_from > f.date_to:
        errors.append(_("The start date is after the end date."))
    return f, errors


def _filter_args(f: HistoryFilter) -> dict[str, str]:
    """The filter as query-string arguments (for page links and the CSV link)."""
    pairs = {
        "resident": f.resident_id or "",
        "kind": f.kind or "",
        "outcome": f.outcome or "",
        "from": f.date_from.isoformat() if f.date_from else "",
        "to": f.date_to.isoformat() if f.date_to else "",
        "status": "all" if f.include_open else "",
    }
    return {k: v for k, v in pairs.items() if v}


@bp.get("/history")
@login_required
def history() -> str:
    s = scope()
    f, errors = _filters()
    page = request.args.get("page", "1")
    with get_runtime().sessions() as session:
        result = queue.history(
            session, s, f, community_zone(), page=int(page) if page.isdigit() else 1
        )
        residents = queue.resident_choices(session, s)
    return render_template(
        "dash/alerts_history.html",
        result=result,
        f=f,
        args=_filter_args(f),
        errors=errors,
        residents=residents,
        kinds=[(k, kind_label(k)) for k in KINDS if s.sees_all or k != "system"],
        all_outcomes=[(o, outcome_label(o)) for o in ALL_OUTCOMES],
    )


def csv_header() -> list[str]:
    return [
        _("ID"),
        _("Resident ID"),
        _("Resident"),
        _("Building"),
        _("Unit"),
        _("Kind"),
        _("Severity"),
        _("Raised"),
        _("Claimed by"),
        _("Claimed at"),
        _("Resolved"),
        _("Resolved by"),
        _("Outcome"),
        _("Note"),
    ]


def _cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to Excel: a resident's name or a note must
    # never run as one.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/history.csv")
@login_required
def export() -> Response:
    s = scope()
    f, _errors = _filters()
    zone = community_zone()
    rt = get_runtime()

    def when(t: datetime | None) -> str:
        return t.astimezone(zone).strftime(CSV_TIME) if t else ""

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        # The BOM tells Excel the file is UTF-8, so Chinese names open correctly.
        buf.write("\ufeff")
        out.writerow(csv_header())
        with rt.sessions() as session:
            for n, a in enumerate(queue.export_rows(session, s, f, zone), 1):
                kind = kind_label(a.kind)
                if a.routine_kind and a.kind == "missed_routine":
                    kind = f"{kind} ({routine_label(a.routine_kind)})"
                out.writerow(
                    [
                        str(a.id),
                        _cell(a.resident_id or ""),
                        _cell(a.resident_name or ""),
                        _cell(a.building or ""),
                        _cell(a.unit or ""),
                        kind,
                        str(SEVERITY_LABELS.get(a.severity, a.severity)),
                        when(a.raised_at),
                        _cell(actor_label(a.claimed_by, a.claimed_by_name)),
                        when(a.claimed_at),
                        when(a.resolved_at),
                        _cell(actor_label(a.resolved_by, a.resolved_by_name)),
                        outcome_label(a.outcome),
                        _cell(a.note or ""),
                    ]
                )
                if n % 200 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    name = "alerts"
    if f.date_from or f.date_to:
        name += f"-{f.date_from or ''}-{f.date_to or ''}"
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "Cache-Control": "no-store",
        },
    )
