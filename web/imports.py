"""Importing files (admins only): the community file (YAML) and residents spreadsheets (CSV,
XLSX, with a downloadable template). An upload is kept server-side
(monitor.importing.spreadsheet.uploads: a row in app_settings, for an hour) and shown as a
preview, every row's changes and problems; nothing is written until the admin presses
Import, and then only exactly what the preview showed (its digest is checked). Reading,
comparing and writing live in monitor.importing.spreadsheet (reading, plan); these views
read the request and render."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from monitor.importing.spreadsheet.plan import Plan, apply_plan
from monitor.importing.spreadsheet.reading import COLUMNS, MAX_BYTES, MAX_ROWS
from monitor.importing.spreadsheet.template import template_csv, template_xlsx
from monitor.importing.spreadsheet.uploads import (
    Upload,
    find_upload,
    keep_upload,
    plan_upload,
    purge_uploads,
    take_upload,
)
from monitor.messages import Problem
from monitor.models import AuditEntry
from web.auth import admin_required, scope
from web.extensions import csrf
from web.helpers import get_runtime

bp = Blueprint("imports", __name__, url_prefix="/admin/import")


@bp.app_template_filter("problem")
def problem_text(problem: Problem | str) -> str:
    """A problem found in an uploaded file, in the reader's language."""
    return problem.translated(_) if isinstance(problem, Problem) else problem


# Room for the form fields and multipart boundaries around a file of MAX_BYTES.
_BODY_SLACK = 64 * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

COLUMN_HELP = {
    "id": _l("The resident's id, unique in the community (like r-301)."),
    "name": _l("The resident's name."),
    "building": _l("The building: volunteers cover buildings."),
    "unit": _l("The unit or flat number."),
    "timezone": _l("Only if the resident lives in another time zone than the community."),
    "phone": _l("The resident's phone number."),
    "contact": _l("Whom to call, and how."),
    "notes": _l("Notes for staff and volunteers."),
    "curtain": _l("Curtain sensor id(s), separated by commas; empty = none."),
    "door": _l("Entrance door sensor id(s)."),
    "light": _l("Light sensor or switch id(s)."),
    "help": _l("Help card or button id(s); a help card is always watched."),
    "motion": _l("Motion, bed or seat sensor id(s)."),
    "contact_sensor": _l("Other reed switch id(s): fridge, cupboard, inner door."),
    "power": _l("Plug or appliance id(s)."),
    "water": _l("Water meter id(s)."),
    "curtain_open": _l(
        "When the curtain should open, like 07:00-09:00 (several: separate with ;)."
    ),
    "curtain_close": _l("When the curtain should close, like 18:00-22:30."),
    "light_on": _l("When the light should go on, like 17:30-21:00."),
    "door_window": _l("When the door should open at least once, like 06:00-22:00."),
    "activity": _l("When any sensor of the resident should report something."),
    "grace": _l(
        "Extra time after each window before it counts as missed, like 15m; "
        "a window may carry its own: 07:00-09:00 +15m."
    ),
    "inactivity_hours": _l("Alert after this many hours without any sign of activity."),
    "away": _l("Days away (no alerts), like 2026-12-01..2026-12-07; several: separate with ;."),
}


def _index_page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    runtime = get_runtime()
    with runtime.sessions() as s:
        recent = [
            (entry, _counts(entry.detail))
            for entry in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.in_(("import.community", "import.spreadsheet")))
                .order_by(AuditEntry.at.desc())
                .limit(10)
            )
        ]
    return (
        render_template(
            "dash/import.html",
            columns=COLUMNS,
            help=COLUMN_HELP,
            recent=recent,
            error=error,
            max_mb=MAX_BYTES // 2**20,
            max_rows=MAX_ROWS,
        ),
        status,
    )


def _counts(detail: str) -> dict[str, Any]:
    try:
        counts = json.loads(detail)
    except ValueError:
        return {}
    return counts if isinstance(counts, dict) else {}


@bp.get("/")
@admin_required
def index() -> tuple[str, int]:
    return _index_page()


@bp.get("/template.<fmt>")
@admin_required
def template(fmt: str) -> Response:
    if fmt == "csv":
        data, mimetype = template_csv(), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        data, mimetype = template_xlsx(_help_rows()), XLSX_TYPE
    else:
        abort(404)
    return Response(
        data,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="curtainwatch-residents.{fmt}"'},
    )


def _help_rows() -> list[list[str]]:
    head = [_("Column"), _("Also accepted"), _("Required"), _("Example"), _("Meaning")]
    return [head] + [
        [
            c.key,
            " / ".join(c.aliases),
            _("yes") if c.required else "",
            c.example,
            str(COLUMN_HELP.get(c.key, "")),
        ]
        for c in COLUMNS
    ]


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _too_big() -> _Refused:
    return _Refused(413, _("The file is larger than %(mb)s MB.", mb=MAX_BYTES // 2**20))


def _received() -> tuple[str, bytes]:
    """The uploaded file's name and bytes. The size is checked before the body is read,
    then CSRF: these views are exempt from the automatic check only so that a huge body is
    refused unread."""
    if (request.content_length or 0) > MAX_BYTES + _BODY_SLACK:
        raise _too_big()
    request.max_content_length = MAX_BYTES + _BODY_SLACK  # a body without a length, too
    try:
        csrf.protect()
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        raise _too_big() from None
    if upload is None or not upload.filename:
        raise _Refused(400, _("Choose a file first."))
    data = upload.stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _too_big()
    return upload.filename[-200:], data


def _keep(kind: str) -> tuple[str, int] | BaseResponse:
    try:
        filename, data = _received()
    except _Refused as refused:
        return _index_page(refused.status, refused.message)
    runtime = get_runtime()
    with runtime.sessions.begin() as s:
        key = keep_upload(
            s,
            current_user.id,
            filename,
            kind,
            data,
            runtime.clock.now(),
            retire_missing=kind == "sheet" and request.form.get("retire_missing") == "on",
        )
    return redirect(url_for("imports.preview", upload=key))


@bp.post("/community")
@admin_required
def upload_community() -> tuple[str, int] | BaseResponse:
    return _keep("community")


@bp.post("/spreadsheet")
@admin_required
def upload_sheet() -> tuple[str, int] | BaseResponse:
    return _keep("sheet")


csrf.exempt(upload_community)
csrf.exempt(upload_sheet)


def _gone() -> tuple[str, int]:
    return _index_page(
        410, _("This upload has expired or was imported already. Upload the file again.")
    )


def _preview_page(
    upload: Upload, plan: Plan, status: int = 200, error: str | None = None
) -> tuple[str, int]:
    rows = [r for r in plan.rows if r.status != "unchanged"]
    unchanged = [r for r in plan.rows if r.status == "unchanged"]
    return (
        render_template(
            "dash/import_preview.html",
            upload=upload,
            plan=plan,
            rows=rows,
            unchanged=unchanged,
            counts=plan.counts(),
            digest=plan.digest(),
            error=error,
        ),
        status,
    )


@bp.get("/preview/<upload>")
@admin_required
def preview(upload: str) -> Any:
    runtime = get_runtime()
    with runtime.sessions() as s:
        found = find_upload(s, upload, current_user.id, runtime.clock.now())
        if found is None:
            return _gone()
        plan = plan_upload(s, found)
    return _preview_page(found, plan)


class _NotImported(Exception):
    """Raised inside the import's transaction to roll it back (the upload stays kept)."""

    def __init__(self, upload: Upload, plan: Plan, status: int, message: str) -> None:
        super().__init__(message)
        self.upload, self.plan, self.status, self.message = upload, plan, status, message


@bp.post("/confirm/<upload>")
@admin_required
def confirm(upload: str) -> Any:
    """Import exactly what the preview showed. The upload is claimed first (a conditional
    delete, which also takes SQLite's write lock), then the plan is made again from the
    same bytes and the database as it is now and compared with the preview's digest."""
    runtime = get_runtime()
    now = runtime.clock.now()
    actor = scope().actor
    try:
        with runtime.sessions.begin() as s:
            found = find_upload(s, upload, current_user.id, now)
            if found is None or not take_upload(s, found.key):
                return _gone()
            plan = plan_upload(s, found)
            if not hmac.compare_digest(plan.digest(), request.form.get("plan", "")):
                message = _(
                    "The residents changed since this preview was shown (or the form was "
                    "altered). Nothing was imported: check this new preview."
                )
                raise _NotImported(found, plan, 409, message)
            if not plan.ok:
                raise _NotImported(found, plan, 400, _("Nothing was imported."))
            counts = apply_plan(s, plan, now, actor, found.filename)
    except _NotImported as refused:
        return _preview_page(refused.upload, refused.plan, refused.status, refused.message)
    runtime.ingestor.reload_registry()
    flash(
        _(
            "Imported %(file)s: %(new)s new, %(changed)s changed, %(unchanged)s unchanged, "
            "%(retired)s no longer watched.",
            file=found.filename,
            new=counts["new"],
            changed=counts["changed"],
            unchanged=counts["unchanged"],
            retired=counts["retired"],
        ),
        "success",
    )
    return redirect(url_for("imports.index"))


@bp.post("/discard/<upload>")
@admin_required
def discard(upload: str) -> BaseResponse:
    runtime = get_runtime()
    with runtime.sessions.begin() as s:
        if find_upload(s, upload, current_user.id, runtime.clock.now()) is not None:
            take_upload(s, upload)
        purge_uploads(s, runtime.clock.now())
    flash(_("The upload was discarded; nothing was imported."), "info")
    return redirect(url_for("imports.index"))
