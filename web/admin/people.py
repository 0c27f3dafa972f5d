"""Admin pages of people (volunteers, staff, family: the list, add, edit, with their rotas,
quiet hours and notification addresses) and of family members' consent and invitations.
Views are thin: read the form, call monitor.admin.people (which checks every field and
writes the audit line), render."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from alerts.family import INVITE_TTL, invite
from monitor.admin import devices as da
from monitor.admin import people as pa
from monitor.admin.forms import AdminError
from monitor.audit import record
from monitor.importing.community import ROLES as PERSON_ROLES
from monitor.importing.community import WEEKDAYS
from monitor.models import Person, Resident, User
from web.admin.blueprint import PER_PAGE, bp, clock_now, form_errors, page_arg
from web.auth import scope, staff_required
from web.helpers import get_runtime

EXTRA_ROTA_ROWS = 2


@bp.route("/people")
@staff_required
def people() -> str:
    filters = {"role": request.args.get("role", ""), "q": request.args.get("q", "")[:200]}
    with get_runtime().sessions() as s:
        page = pa.people_page(s, **filters, page=page_arg(), per_page=PER_PAGE)
        s.expunge_all()
    return render_template(
        "dash/admin_people.html",
        page=page,
        filters=filters,
        roles=PERSON_ROLES,
        mask=pa.mask_url,
        rota_days=pa.rota_days,
    )


def _rota_rows(form: Any) -> list[pa.RotaRow]:
    count = form.get("rota_rows", "0")
    n = min(int(count), pa.ROTA_ROWS_MAX) if count.isdigit() else 0
    return [
        pa.RotaRow(
            form.getlist(f"rota-{i}-days"),
            form.get(f"rota-{i}-from", ""),
            form.get(f"rota-{i}-to", ""),
        )
        for i in range(n)
    ]


def _person_form(person: Person | None) -> dict[str, Any]:
    """The form's values for a stored person (or a blank one)."""
    if person is None:
        return {"role": "volunteer", "language": "zh-CN", "rota": [], "notify": []}
    return {
        "id": person.id,
        "name": person.name,
        "role": person.role,
        "language": person.language,
        "buildings": ", ".join(str(b) for b in person.buildings or []),
        "resident_id": person.resident_id or "",
        "quiet_from": (person.quiet_hours or {}).get("from", ""),
        "quiet_to": (person.quiet_hours or {}).get("to", ""),
        "rota": [
            {"days": pa.rota_days(spell), "from": spell.get("from", ""), "to": spell.get("to", "")}
            for spell in person.rota or []
        ],
        "notify": list(person.notify or []),
    }


def _posted_person_form(stored: dict[str, Any]) -> dict[str, Any]:
    """What was sent, to show again with the messages (addresses stay masked)."""
    form: dict[str, Any] = request.form.to_dict()
    form["rota"] = [
        {"days": r.days, "from": r.start, "to": r.end} for r in _rota_rows(request.form)
    ]
    form["notify"] = stored.get("notify", [])
    form["notify_remove"] = request.form.getlist("notify_remove")
    return form


def _render_person(
    person_id: str | None, form: dict[str, Any], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    with get_runtime().sessions() as s:
        residents = da.residents_for_select(s)
        users = (
            list(s.scalars(select(User.username).where(User.person_id == person_id)))
            if person_id
            else []
        )
        person = s.get(Person, person_id) if person_id else None
        consent = None
        if person is not None and person.role == "family":
            consent = next((m for m in pa.family_members(s) if m.id == person.id), None)
    rows = list(form.get("rota", [])) + [{"days": [], "from": "", "to": ""}] * EXTRA_ROTA_ROWS
    page = render_template(
        "dash/admin_person.html",
        person_id=person_id,
        form=form,
        rota=rows[: pa.ROTA_ROWS_MAX],
        errors=errors,
        residents=residents,
        roles=PERSON_ROLES,
        weekdays=WEEKDAYS,
        masked=[pa.mask_url(u) for u in form.get("notify", [])],
        users=users,
        consent=consent,
    )
    return page, status


@bp.route("/people/new", methods=["GET", "POST"])
@staff_required
def person_new() -> tuple[str, int] | Response:
    if request.method == "POST":
        try:
            with get_runtime().sessions.begin() as s:
                values = pa.read_person(s, request.form, _rota_rows(request.form), [], new=True)
                pa.save_person(s, None, values, scope().actor, clock_now())
        except AdminError as e:
            return _render_person(None, _posted_person_form({}), form_errors(e), 400)
        flash(_("%(name)s added.", name=values.name))
        return redirect(url_for("admin.person", person_id=values.id), code=303)
    return _render_person(None, _person_form(None), {})


@bp.route("/people/<path:person_id>", methods=["GET", "POST"])
@staff_required
def person(person_id: str) -> tuple[str, int] | Response:
    with get_runtime().sessions() as s:
        stored_person = s.get(Person, person_id)
        if stored_person is None:
            abort(404)
        stored = _person_form(stored_person)
    if request.method == "POST":
        try:
            with get_runtime().sessions.begin() as s:
                values = pa.read_person(
                    s,
                    request.form,
                    _rota_rows(request.form),
                    request.form.getlist("notify_remove"),
                    new=False,
                )
                pa.save_person(s, person_id, values, scope().actor, clock_now())
        except AdminError as e:
            return _render_person(person_id, _posted_person_form(stored), form_errors(e), 400)
        flash(_("Saved."))
        return redirect(url_for("admin.person", person_id=person_id), code=303)
    return _render_person(person_id, stored, {})


# -- family ----------------------------------------------------------------------------


@bp.route("/family", methods=["GET", "POST"])
@staff_required
def family() -> tuple[str, int]:
    """Family members and their consent; POST makes an invitation link for a resident."""
    link = None
    invited = ""
    errors: dict[str, str] = {}
    status = 200
    runtime = get_runtime()
    if request.method == "POST":
        resident_id = request.form.get("resident_id", "")
        with runtime.sessions.begin() as s:
            resident = s.get(Resident, resident_id) if resident_id else None
            if resident is None or not resident.active:
                errors["resident_id"] = _("Choose a resident.")
                status = 400
            else:
                now = runtime.clock.now()
                # Signed with the key the family page checks (the configured one, if set).
                key = current_app.config["LINK_KEY"]
                token = invite(s, resident.id, scope().actor, now, key=key)
                record(
                    s,
                    scope().actor,
                    "family.invite",
                    resident.id,
                    f"invitation link made, valid {INVITE_TTL.days} days",
                    now,
                )
                invited = resident.name
                link = f"{runtime.settings.base_url.rstrip('/')}/family/invite/{token}"
    with runtime.sessions() as s:
        members = pa.family_members(s)
        residents = da.residents_for_select(s)
    page = render_template(
        "dash/admin_family.html",
        members=members,
        residents=residents,
        link=link,
        invited=invited,
        errors=errors,
        ttl_days=INVITE_TTL.days,
    )
    return page, status
