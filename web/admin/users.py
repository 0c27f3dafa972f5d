"""Admin pages of web users, for admins only: add a user, deactivate or reactivate one,
reset a password, make a new API token (shown once). Views are thin: read the form, call
monitor.admin.users (which checks every field and writes the audit line), render."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from monitor.admin import users as ua
from monitor.admin.forms import AdminError
from monitor.models import ROLES as USER_ROLES
from monitor.models import Person, User
from web.admin.blueprint import bp, clock_now, flash_errors, form_errors
from web.auth import admin_required, scope
from web.helpers import get_runtime


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
            ua.add_user(s, form, scope().actor, clock_now())
    except AdminError as e:
        form.pop("password", None)
        return _render_users(form, form_errors(e), status=400)
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
            user = ua.set_user_active(
                s, _user_id(), active, scope().actor, clock_now(), own_id=current_user.id
            )
            name = user.username
    except AdminError as e:
        flash_errors(e)
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
            user = ua.reset_password(
                s, _user_id(), request.form.get("password", ""), scope().actor, clock_now()
            )
            name = user.username
    except AdminError as e:
        flash_errors(e)
        return redirect(url_for("admin.users"), code=303)
    flash(_("New password set for %(name)s.", name=name))
    return redirect(url_for("admin.users"), code=303)


@bp.route("/users/token", methods=["POST"])
@admin_required
def user_token() -> Response:
    """The token is in this response only: never stored in clear, never in a cookie."""
    try:
        with get_runtime().sessions.begin() as s:
            user, token = ua.make_api_token(s, _user_id(), scope().actor, clock_now())
            name = user.username
    except AdminError as e:
        flash_errors(e)
        return redirect(url_for("admin.users"), code=303)
    page, status = _render_users(token=(name, token))
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response
