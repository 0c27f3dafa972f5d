"""The audit log's one writer: every change people make (admin pages, imports from the web
or the command line, claiming and resolving alerts) writes one line through `record`: who,
what, on what, and how. Staff read them back on the audit page (monitor.pages.audit)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.models import AuditEntry


def record(
    session: Session, actor: str, action: str, target: str, detail: str, now: datetime
) -> None:
    """One line in the audit log ("who changed her window?")."""
    session.add(
        AuditEntry(at=now, actor=actor[:64], action=action[:64], target=target[:200], detail=detail)
    )


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """An edit's audit detail: each field that changed, old -> new."""
    changed = [
        f"{k}: {before[k]!r} -> {after[k]!r}" if k in before else f"{k}: {after[k]!r}"
        for k in after
        if before.get(k) != after[k]
    ]
    return "; ".join(changed) or "no change"
