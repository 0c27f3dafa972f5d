"""Admin pages of residents (the list; add, edit, deactivate, reactivate) and of their
devices (add, change kind, move, remove). Views are thin: read the form, call
monitor.admin.residents / monitor.admin.devices (which check every field and write the audit
line), render."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from monitor.admin import devices as da
from monitor.admin import people as pa
from monitor.admin import residents as ra
from monitor.admin.forms import AdminError
from monitor.importing.community import DEVICE_KINDS
from monitor.models import Device, Resident
from web.admin.blueprint import (
    PER_PAGE,
    bp,
    clock_now,
    flash_errors,
    form_errors,
    page_arg,
    reload_registry,
)
from web.auth import scope, staff_required
from web.devices import device_kind_label
from web.helpers import community_zone, get_runtime


@bp.route("/residents")
@staff_required
def residents() -> str:
    filters = {
        "q": request.args.get("q", "")[:200],
        "building": request.args.get("building", "")[:64],
        "show": request.args.get("show", "active"),
    }
    with get_runtime().sessions() as s:
        page, device_counts = ra.residents_page(s, **filters, page=page_arg(), per_page=PER_PAGE)
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
            values = ra.read_resident(form, str(community_zone()))
            with get_runtime().sessions.begin() as s:
                ra.add_resident(s, values, scope().actor, clock_now())
        except AdminError as e:
            return render_template(
                "dash/admin_resident_form.html", form=form, errors=form_errors(e), new=True
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
            values = ra.read_resident(form, str(community_zone()))
            with get_runtime().sessions.begin() as s:
                ra.update_resident(s, resident_id, values, scope().actor, clock_now())
        except AdminError as e:
            return _resident_page(resident_id, form=form, errors=form_errors(e), status=400)
        flash(_("Saved."))
        return redirect(url_for("admin.resident", resident_id=resident_id), code=303)
    return _resident_page(resident_id)


@bp.route("/residents/deactivate", methods=["POST"])
@staff_required
def resident_deactivate() -> Response:
    resident_id = request.form.get("resident_id", "")
    try:
        with get_runtime().sessions.begin() as s:
            done = ra.deactivate_resident(s, resident_id, scope().actor, clock_now())
    except AdminError as e:
        flash_errors(e)
    else:
        reload_registry()
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
            done = ra.reactivate_resident(s, resident_id, scope().actor, clock_now())
    except AdminError as e:
        flash_errors(e)
    else:
        reload_registry()
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
                clock_now(),
            )
    except AdminError as e:
        if "resident_id" in e.problems or not resident_id:
            flash_errors(e)
            return redirect(url_for("admin.residents"), code=303)
        return _resident_page(
            resident_id, device_form=form, device_errors=form_errors(e), status=400
        )
    reload_registry()
    flash(_("Device %(id)s added.", id=form.get("device_id", "").strip()))
    return redirect(url_for("admin.resident", resident_id=resident_id), code=303)


def _device_change(action: str) -> Response:
    form = request.form
    device_id = form.get("device_id", "")
    back = form.get("back_to", "")
    try:
        with get_runtime().sessions.begin() as s:
            if action == "kind":
                da.change_kind(s, device_id, form.get("kind", ""), scope().actor, clock_now())
                message = _(
                    "%(id)s is now a %(kind)s device.",
                    id=device_id,
                    kind=device_kind_label(form.get("kind", "")),
                )
            elif action == "move":
                target = form.get("resident_id", "")
                da.move_device(s, device_id, target, scope().actor, clock_now())
                message = _("%(id)s moved to %(resident)s.", id=device_id, resident=target)
            else:
                da.remove_device(s, device_id, scope().actor, clock_now())
                message = _("%(id)s removed.", id=device_id)
    except AdminError as e:
        flash_errors(e)
    else:
        reload_registry()
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
