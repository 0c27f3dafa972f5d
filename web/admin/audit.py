"""The audit log page (/admin/audit): who changed what, newest first, for staff."""

from __future__ import annotations

from flask import render_template, request

from monitor.pages.audit import audit_page
from web.admin.blueprint import PER_PAGE, bp, page_arg
from web.auth import staff_required
from web.helpers import get_runtime


@bp.route("/audit")
@staff_required
def audit() -> str:
    q = request.args.get("q", "")[:200]
    with get_runtime().sessions() as s:
        page = audit_page(s, q=q, page=page_arg(), per_page=PER_PAGE)
        s.expunge_all()
    return render_template("dash/admin_audit.html", page=page, q=q)
