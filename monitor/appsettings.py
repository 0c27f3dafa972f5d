"""State every instance must share, kept in the database: the key that signs the links in
notifications. Set CURTAINWATCH_SECRET_KEY to choose it; otherwise the first instance makes
one and the others read it, so links keep working across restarts and instances."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session, sessionmaker

from monitor.db import upsert
from monitor.models import AppSetting, table


def secret_key(sessions: sessionmaker[Session], configured: str | None = None) -> str:
    if configured:
        return configured
    with sessions.begin() as session:
        return shared_secret(session)


def shared_secret(session: Session, configured: str | None = None) -> str:
    """secret_key() inside a transaction the caller already has."""
    if configured:
        return configured
    upsert(
        session,
        table(AppSetting),
        [{"key": "secret_key", "value": secrets.token_urlsafe(48)}],
        ["key"],
    )
    stored = session.get(AppSetting, "secret_key")
    assert stored is not None
    return stored.value
