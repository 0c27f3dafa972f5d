"""The audit page's query: recent audit lines, newest first, searchable by actor, action
or target (the lines themselves are written by monitor.audit.record)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from monitor.models import AuditEntry
from monitor.paging import Page, paginate


def audit_page(
    session: Session, *, q: str = "", page: int = 1, per_page: int = 100
) -> Page[AuditEntry]:
    """Recent audit lines, newest first; `q` matches actor, action or target."""
    where: list[ColumnElement[bool]] = []
    if q.strip():
        like = q.strip()
        where.append(
            or_(
                AuditEntry.actor.icontains(like, autoescape=True),
                AuditEntry.action.icontains(like, autoescape=True),
                AuditEntry.target.icontains(like, autoescape=True),
            )
        )
    query = select(AuditEntry).where(*where).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    return paginate(session, query, page, per_page)
