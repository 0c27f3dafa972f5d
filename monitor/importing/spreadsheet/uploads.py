"""Uploads kept between the preview and the import. An upload waits in app_settings
(shared by every instance, unlike a temp file) under "import:<expiry, epoch seconds>-<random>",
so expired ones are found by key alone. The import reads the very bytes the preview read and
claims the row with a conditional delete, so a double click imports once."""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.importing.spreadsheet.plan import Plan, plan_community, plan_sheet
from monitor.importing.spreadsheet.stored import chunks
from monitor.models import AppSetting

UPLOAD_PREFIX = "import:"
UPLOAD_KEEP = timedelta(hours=1)
_UPLOAD_KEY = re.compile(r"^(\d{1,11})-[A-Za-z0-9_-]{24}$")


@dataclass(frozen=True)
class Upload:
    key: str
    user_id: int
    filename: str
    kind: str  # "sheet" | "community"
    retire_missing: bool
    data: bytes
    expires_at: datetime


def keep_upload(
    session: Session,
    user_id: int,
    filename: str,
    kind: str,
    data: bytes,
    now: datetime,
    retire_missing: bool = False,
) -> str:
    """Store an upload until it is imported or UPLOAD_KEEP passes; returns its key."""
    purge_uploads(session, now)
    expires = now + UPLOAD_KEEP
    key = f"{int(expires.timestamp())}-{secrets.token_urlsafe(18)}"
    value = {
        "user": user_id,
        "filename": filename,
        "kind": kind,
        "retire_missing": retire_missing,
        "data": base64.b64encode(data).decode(),
    }
    session.add(AppSetting(key=UPLOAD_PREFIX + key, value=json.dumps(value)))
    return key


def find_upload(session: Session, key: str, user_id: int, now: datetime) -> Upload | None:
    """The upload `user_id` made under `key`, unless it expired (or never was)."""
    m = _UPLOAD_KEY.match(key)
    if m is None:
        return None
    expires = datetime.fromtimestamp(int(m[1]), UTC)
    row = session.get(AppSetting, UPLOAD_PREFIX + key)
    if row is None or expires <= now:
        return None
    value = json.loads(row.value)
    if value.get("user") != user_id:
        return None
    return Upload(
        key,
        user_id,
        str(value["filename"]),
        str(value["kind"]),
        bool(value["retire_missing"]),
        base64.b64decode(value["data"]),
        expires,
    )


def take_upload(session: Session, key: str) -> bool:
    """Claim an upload for its import; False when another request already did."""
    result = session.execute(delete(AppSetting).where(AppSetting.key == UPLOAD_PREFIX + key))
    return bool(getattr(result, "rowcount", 0) == 1)


def purge_uploads(session: Session, now: datetime) -> int:
    """Forget uploads that expired; returns how many."""
    stale = [
        key
        for key in session.scalars(
            select(AppSetting.key).where(AppSetting.key.startswith(UPLOAD_PREFIX))
        )
        if (m := _UPLOAD_KEY.match(key[len(UPLOAD_PREFIX) :])) is None
        or datetime.fromtimestamp(int(m[1]), UTC) <= now
    ]
    for chunk in chunks(stale):
        session.execute(delete(AppSetting).where(AppSetting.key.in_(chunk)))
    return len(stale)


def plan_upload(session: Session, upload: Upload) -> Plan:
    if upload.kind == "community":
        return plan_community(session, upload.data)
    return plan_sheet(session, upload.data, upload.retire_missing)
