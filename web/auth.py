"""Signing in and out, the language switch, and the helpers every dashboard view uses to
ask "who is this and what may they see" (`scope()`, `staff_required`, `resident_or_403`).
Passwords are checked by monitor.admin.users; the role rules live in monitor.access."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from monitor.access import Scope, scope_for
from monitor.admin.users import check_password
from monitor.models import User
from web.extensions import limiter, login_manager
from web.helpers import LANGUAGES, get_runtime

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])


class WebUser(UserMixin):
    """The signed-in user as Flask-Login sees it: a detached copy of the row, so views never
    lazily load from a closed session."""

    def __init__(self, row: User) -> None:
        self.id = row.id
        self.username = row.username
        self.display_name = row.display_name
        self.role = row.role
        self.person_id = row.person_id
        self.language = row.language
        self.row = row

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def _load_user(user_id: str) -> WebUser | None:
    with get_runtime().sessions() as s:
        row = s.get(User, int(user_id)) if user_id.isdigit() else None
        return WebUser(row) if row is not None and row.active else None


def scope() -> Scope:
    """What the signed-in user may see (computed once per request)."""
    if "scope" not in g:
        if not current_user.is_authenticated:
            abort(401)
        with get_runtime().sessions() as s:
            g.scope = scope_for(s, current_user.row)
    result: Scope = g.scope
    return result


def staff_required(view: F) -> F:
    """Signed in as staff or admin, else 403 (a volunteer or family member)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not scope().sees_all:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not scope().is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def resident_or_403(resident_id: str) -> None:
    """Refuse (403) a resident outside the user's scope; 404 looks the same on purpose, so
    an id cannot be probed."""
    with get_runtime().sessions() as s:
        if not scope().may_see(s, resident_id):
            abort(403)


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


def _login_key() -> str:
    # Per address and username: one person mistyping does not lock out the whole office.
    return f"{request.remote_addr}|{request.form.get('username', '').strip().lower()}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    "5 per minute;30 per hour",
    key_func=_login_key,
    methods=["POST"],
    deduct_when=lambda response: response.status_code != 302,
)
def login() -> tuple[str, int] | Response:
    form = LoginForm()
    if form.validate_on_submit():
        runtime = get_runtime()
        with runtime.sessions.begin() as s:
            row = check_password(s, form.username.data, form.password.data)
            if row is not None:
                row.last_login_at = runtime.clock.now()
                login_user(WebUser(row))
                session.permanent = True
                return redirect(_safe_next(request.args.get("next")))
        flash(_("Wrong username or password."), "error")
    # A failed sign-in is a 401, so the rate limit (and a test) can tell it from success.
    return render_template("dash/login.html", form=form), 401 if request.method == "POST" else 200


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never send a fresh login off to another host."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/"):
            return target
    return url_for("board.index")


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def language() -> Response:
    """The language switch in the page header; remembered on the user if signed in."""
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        if current_user.is_authenticated:
            with get_runtime().sessions.begin() as s:
                row = s.get(User, current_user.id)
                if row is not None:
                    row.language = "en" if chosen == "en" else "zh-CN"
    return redirect(_safe_next(request.form.get("next")))


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
