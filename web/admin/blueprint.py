"""The admin blueprint (/admin), its home page, and what its views share: a form's
problems as translated messages, the page number of a list, the clock, and reloading the
device registry after a change. The views are in the other modules of web.admin."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, render_template, request
from flask_babel import gettext as _
from sqlalchemy import func, select

from monitor.admin.forms import AdminError
from monitor.models import Community, Device, Person, Resident, User
from web.auth import scope, staff_required
from web.helpers import get_runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")

PER_PAGE = 100


def form_errors(e: AdminError) -> dict[str, str]:
    """An AdminError's problems as translated messages by field."""
    out = {}
    for name, (msgid, params) in e.problems.items():
        values = dict(params)
        if isinstance(values.get("field"), str):
            values["field"] = _(values["field"])
        out[name] = _(msgid, **values)
    return out


def flash_errors(e: AdminError) -> None:
    for message in form_errors(e).values():
        flash(message, "error")


def page_arg() -> int:
    value = request.args.get("page", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


def clock_now() -> Any:
    return get_runtime().clock.now()


def reload_registry() -> None:
    """Devices changed: the ingestor reads the next readings with the new registry."""
    get_runtime().ingestor.reload_registry()


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
