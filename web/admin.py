"""Administration pages: residents (add, edit, deactivate) and their devices (add, change
kind, move, remove), people and their rotas and quiet hours, family invitations and consent,
web users (admins only), and the audit log. Importing files is web.imports (/admin/import).

Views are thin: read the form, call monitor.admin.people / monitor.admin.devices (which check
every field and write the audit line), render. A form with a problem is shown again with
the message next to the field and status 400; nothing is saved."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from alerts.family import INVITE_TTL, invite
from monitor.admin import devices as da
from monitor.admin import people as pa
from monitor.importing.community import DEVICE_KINDS, WEEKDAYS
from monitor.importing.community import ROLES as PERSON_ROLES
from monitor.models import ROLES as USER_ROLES
from monitor.models import Community, Device, Person, Resident, User
from web.auth import admin_required, scope, staff_required
from web.devices import device_kind_label
from web.helpers import community_zone, get_runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")

PER_PAGE = 100
EXTRA_ROTA_ROWS = 2


def _errors(e: da.AdminError) -> dict[str, str]:
    """An AdminError's problems as translated messages by field."""
    out = {}
    for name, (msgid, params) in e.problems.items():
        values = dict(params)
        if isinstance(values.get("field"), str):
            values["field"] = _(values["field"])
        out[name] = _(msgid, **values)
    return out


def _flash_errors(e: da.AdminError) -> None:
    for message in _errors(e).values():
        flash(message, "error")


def _page_arg() -> int:
    value = request.args.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


def _now() -> Any:
    return get_runtime().clock.now()


def _reload_registry() -> None:
    """Devices changed: the ingestor reads the next readings with the new registry."""
    get_runtime().ingestor.reload_registry()


# -- index -----------------------------------------------------------------------------


@bp.route("/")
@staff_required
def index() -> str:
    with get_runtime().sessions() as s:
        counts = {
            "residents": s.scalar(
                select(func.count()).select_from(Resident).where(Resident.active)
            ),
            "inactive": s.scalar(
                select(func.count()).select_from(Resident).where(~Resident.active)
            ),
            "devices": s.scalar(select(func.count()).select_from(Device)),
            "people": s.scalar(select(func.count()).select_from(Person)),
            "users": s.scalar(select(func.count()).select_from(User).where(User.active)),
        }
        imported_at = s.scalar(select(Community.imported_at).limit(1))
    return render_template(
        "dash/admin.html", counts=counts, imported_at=imported_at, is_admin=scope().is_admin
    )


# -- residents -------------------------------------------------------------------------


@bp.route("/residents")
@staff_required
def residents() -> str:
    filters = {
        "q": request.args.get("q", "")[:200],
        "building": request.args.get("building", "")[:64],
        "show": request.args.get("show", "active"),
    }
    with get_runtime().sessions() as s:
        page, device_counts = pa.residents_page(s, **filters, page=_page_arg(), per_page=PER_PAGE)
    return render_template(
        "dash/admin_residents.html", page=page, device_counts=device_counts, filters=filters
    )


@bp.route("/residents/new", methods=["GET", "POST"])
@staff_required
def resident_new() -> str | Response | tuple[str, int]:
    form: dict[str, str] = {"timezone": str(community_zone())}
    if request.method == "POST":
        form = request.form.to_dict()
        try:
            values = pa.read_resident(form, str(community_zone()))
            with get_runtime().sessions.begin() as s:
                pa.add_resident(s, values, scope().actor, _now())
        except da.AdminError as e:
            return render_template(
                "dash/admin_resident_form.html", form=form, errors=_errors(e), new=True
            ), 400
        flash(_("Resident %(name)s added. Now give them devices.", name=values.name))
        return redirect(url_for("admin.resident", resident_id=values.id), code=303)
    return render_template("dash/admin_resident_form.html", form=form, errors={}, new=True)


def _resident_page(
    resident_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    device_form: dict[str, str] | None = None,
    device_errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    with get_runtime().sessions() as s:
        resident = s.get(Resident, resident_id)
        if resident is None:
            abort(404)
        devices = list(
            s.scalars(select(Device).where(Device.resident_id == resident_id).order_by(Device.id))
        )
        others = [r for r in da.residents_for_select(s) if r[0] != resident_id]
        family = [m for m in pa.family_members(s) if m.resident_id == resident_id]
        s.expunge_all()
    if form is None:
        form = {
            k: getattr(resident, k)
            for k in ("id", "name", "building", "unit", "timezone", "phone", "contact", "notes")
        }
    page = render_template(
        "dash/admin_resident.html",
        resident=resident,
        form=form,
        errors=errors or {},
        devices=devices,
        others=others,
        family=family,
        kinds=DEVICE_KINDS,
        device_form=device_form or {},
        device_errors=device_errors or {},
        new=False,
    )
    return page, status


@bp.route("/residents/<path:resident_id>", methods=["GET", "POST"])
@staff_required
def resident(resident_id: str) -> tuple[str, int] | Response:
    if request.method == "POST":
        form = request.form.to_dict()
        form["id"] = resident_id  # the id cannot change here
        try:
            values = pa.read_resident(form, str(community_zone()))
            with get_runtime().sessions.begin() as s:
                pa.update_resident(s, resident_id, values, scope().actor, _now())
        except da.AdminError as e:
            return _resident_page(resident_id, form=form, errors=_errors(e), status=400)
        flash(_("Saved."))
        return redirect(url_for("admin.resident", resident_id=resident_id), code=303)
    return _resident_page(resident_id)


@bp.route("/residents/deactivate", methods=["POST"])
@staff_required
def resident_deactivate() -> Response:
    resident_id = request.form.get("resident_id", "")
    try:
        with get_runtime().sessions.begin() as s:
            done = pa.deactivate_resident(s, resident_id, scope().actor, _now())
    except da.AdminError as e:
        _flash_errors(e)
    else:
        _reload_registry()
        flash(
            _(
                "Deactivated: %(routines)s routines stopped, %(devices)s devices taken away, "
                "%(alerts)s open alerts closed.",
                routines=done.routines,
                devices=done.devices,
                alerts=done.alerts,
            )
        )
    return redirect(url_for("admin.resident", resident_id=resident_id), code=303)


@bp.route("/residents/reactivate", methods=["POST"])
@staff_required
def resident_reactivate() -> Response:
    resident_id = request.form.get("resident_id", "")
    try:
        with get_runtime().sessions.begin() as s:
            done = pa.reactivate_resident(s, resident_id, scope().actor, _now())
    except da.AdminError as e:
        _flash_errors(e)
    else:
        _reload_registry()
        flash(
            _(
                "Watched again: %(routines)s routines restarted, %(devices)s devices given back.",
                routines=done.routines,
                devices=done.devices,
            )
        )
    return redirect(url_for("admin.resident", resident_id=resident_id), code=303)


# -- devices of a resident -------------------------------------------------------------


@bp.route("/devices/add", methods=["POST"])
@staff_required
def device_add() -> Response | tuple[str, int]:
    form = request.form.to_dict()
    resident_id = form.get("resident_id", "")
    try:
        with get_runtime().sessions.begin() as s:
            da.add_device(
                s,
                resident_id,
                form.get("device_id", ""),
                form.get("kind", ""),
                scope().actor,
                _now(),
            )
    except da.AdminError as e:
        if "resident_id" in e.problems or not resident_id:
            _flash_errors(e)
            return redirect(url_for("admin.residents"), code=303)
        return _resident_page(resident_id, device_form=form, device_errors=_errors(e), status=400)
    _reload_registry()
    flash(_("Device %(id)s added.", id=form.get("device_id", "").strip()))
    return redirect(url_for("admin.resident", resident_id=resident_id), code=303)


def _device_change(action: str) -> Response:
    form = request.form
    device_id = form.get("device_id", "")
    back = form.get("back_to", "")
    try:
        with get_runtime().sessions.begin() as s:
            if action == "kind":
                da.change_kind(s, device_id, form.get("kind", ""), scope().actor, _now())
                message = _(
                    "%(id)s is now a %(kind)s device.",
                    id=device_id,
                    kind=device_kind_label(form.get("kind", "")),
                )
            elif action == "move":
                target = form.get("resident_id", "")
                da.move_device(s, device_id, target, scope().actor, _now())
                message = _("%(id)s moved to %(resident)s.", id=device_id, resident=target)
            else:
                da.remove_device(s, device_id, scope().actor, _now())
                message = _("%(id)s removed.", id=device_id)
    except da.AdminError as e:
        _flash_errors(e)
    else:
        _reload_registry()
        flash(message)
    if back:
        return redirect(url_for("admin.resident", resident_id=back), code=303)
    return redirect(url_for("admin.residents"), code=303)


@bp.route("/devices/kind", methods=["POST"])
@staff_required
def device_kind() -> Response:
    return _device_change("kind")


@bp.route("/devices/move", methods=["POST"])
@staff_required
def device_move() -> Response:
    return _device_change("move")


@bp.route("/devices/remove", methods=["POST"])
@staff_required
def device_remove() -> Response:
    return _device_change("remove")


# -- people ----------------------------------------------------------------------------


@bp.route("/people")
@staff_required
def people() -> str:
    filters = {"role": request.args.get("role", ""), "q": request.args.get("q", "")[:200]}
    with get_runtime().sessions() as s:
        page = pa.people_page(s, **filters, page=_page_arg(), per_page=PER_PAGE)
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
                pa.save_person(s, None, values, scope().actor, _now())
        except da.AdminError as e:
            return _render_person(None, _posted_person_form({}), _errors(e), 400)
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
                pa.save_person(s, person_id, values, scope().actor, _now())
        except da.AdminError as e:
            return _render_person(person_id, _posted_person_form(stored), _errors(e), 400)
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
                da.record(
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


# -- users (admins only) ---------------------------------------------------------------


def _render_users(
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    token: tuple[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    with get_runtime().sessions() as s:
        users = list(s.scalars(select(User).order_by(User.active.desc(), User.username)))
        people = list(s.execute(select(Person.id, Person.name, Person.role).order_by(Person.name)))
        s.expunge_all()
    page = render_template(
        "dash/admin_users.html",
        users=users,
        people=people,
        roles=USER_ROLES,
        form=form or {"role": "staff"},
        errors=errors or {},
        token=token,
        own_id=current_user.id,
    )
    return page, status


@bp.route("/users")
@admin_required
def users() -> tuple[str, int]:
    return _render_users()


@bp.route("/users/add", methods=["POST"])
@admin_required
def user_add() -> tuple[str, int] | Response:
    form = request.form.to_dict()
    try:
        with get_runtime().sessions.begin() as s:
            pa.add_user(s, form, scope().actor, _now())
    except da.AdminError as e:
        form.pop("password", None)
        return _render_users(form, _errors(e), status=400)
    flash(_("User %(name)s added; they can sign in now.", name=form.get("username", "").strip()))
    return redirect(url_for("admin.users"), code=303)


def _user_id() -> int:
    value = request.form.get("user_id", "")
    if not value.isdigit():
        abort(400)
    return int(value)


@bp.route("/users/deactivate", methods=["POST"])
@admin_required
def user_deactivate() -> Response:
    return _set_active(False)


@bp.route("/users/reactivate", methods=["POST"])
@admin_required
def user_reactivate() -> Response:
    return _set_active(True)


def _set_active(active: bool) -> Response:
    try:
        with get_runtime().sessions.begin() as s:
            user = pa.set_user_active(
                s, _user_id(), active, scope().actor, _now(), own_id=current_user.id
            )
            name = user.username
    except da.AdminError as e:
        _flash_errors(e)
    else:
        flash(
            _("%(name)s can sign in again.", name=name)
            if active
            else _("%(name)s is deactivated and can no longer sign in.", name=name)
        )
    return redirect(url_for("admin.users"), code=303)


@bp.route("/users/password", methods=["POST"])
@admin_required
def user_password() -> tuple[str, int] | Response:
    try:
        with get_runtime().sessions.begin() as s:
            user = pa.reset_password(
                s, _user_id(), request.form.get("password", ""), scope().actor, _now()
            )
            name = user.username
    except da.AdminError as e:
        _flash_errors(e)
        return redirect(url_for("admin.users"), code=303)
    flash(_("New password set for %(name)s.", name=name))
    return redirect(url_for("admin.users"), code=303)


@bp.route("/users/token", methods=["POST"])
@admin_required
def user_token() -> Response:
    """The token is in this response only: never stored in clear, never in a cookie."""
    try:
        with get_runtime().sessions.begin() as s:
            user, token = pa.make_api_token(s, _user_id(), scope().actor, _now())
            name = user.username
    except da.AdminError as e:
        _flash_errors(e)
        return redirect(url_for("admin.users"), code=303)
    page, status = _render_users(token=(name, token))
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- audit -----------------------------------------------------------------------------


@bp.route("/audit")
@staff_required
def audit() -> str:
    q = request.args.get("q", "")[:200]
    with get_runtime().sessions() as s:
        page = pa.audit_page(s, q=q, page=_page_arg(), per_page=PER_PAGE)
        s.expunge_all()
    return render_template("dash/admin_audit.html", page=page, q=q)
