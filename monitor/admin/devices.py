"""Devices as staff manage them: which ones need a look (offline, never heard from, battery
low), the list of all devices, the ids heard on MQTT that nobody registered, the payloads we
could not read, and the changes staff make (assign an unknown device, add, change kind, move,
remove). Plain functions over a Session; every change writes an AuditEntry.

The ingestor keeps an in-memory copy of the device registry: after committing a change made
here, the caller must call `Ingestor.reload_registry()` so the next reading of that device is
read with its new owner and kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from monitor.access import Scope
from monitor.admin.forms import AdminError
from monitor.audit import record
from monitor.importing.community import DEVICE_KINDS
from monitor.messages import N_, Message, load
from monitor.models import (
    DeadLetter,
    Device,
    Resident,
    UnknownDevice,
)
from monitor.paging import Page
from monitor.rules.device_health import (
    LOW_BATTERY,
    NEVER_SEEN_GRACE,
    close_departed_device_alerts,
    device_low_battery,
    device_offline,
)

DEVICE_ID_MAX = 200
PAYLOAD_SHOWN = 400  # characters of a dead letter shown on the page
DEAD_LETTER_WINDOW = timedelta(hours=24)
# Device alerts the engine raises, keyed "<kind>:<device id>" (monitor.rules.engine.check_devices).

# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    now: datetime  # when the page was read: what "offline" is measured against
    id: str
    kind: str
    resident_id: str
    resident_name: str
    building: str
    unit: str
    last_seen: datetime | None
    battery: float | None
    online: bool | None
    alive_until: datetime | None
    created_at: datetime

    @property
    def offline(self) -> bool:
        if self.online is False:
            return True
        if self.alive_until is not None and self.alive_until < self.now:
            return True
        return self.last_seen is None and self.created_at < self.now - NEVER_SEEN_GRACE

    @property
    def never_seen(self) -> bool:
        return self.last_seen is None

    @property
    def low_battery(self) -> bool:
        return self.battery is not None and self.battery < LOW_BATTERY


def _device_select() -> Any:
    return select(
        Device.id,
        Device.kind,
        Device.resident_id,
        Resident.name,
        Resident.building,
        Resident.unit,
        Device.last_seen,
        Device.battery,
        Device.online,
        Device.alive_until,
        Device.created_at,
    ).join(Resident, Resident.id == Device.resident_id)


def _rows(result: Any, now: datetime) -> list[DeviceRow]:
    return [DeviceRow(now, *row) for row in result]


def problem_devices(session: Session, scope: Scope, now: datetime) -> list[DeviceRow]:
    """Devices offline or low on battery, with their resident; the longest silent first."""
    stmt = (
        _device_select()
        .where(scope.residents(Device.resident_id), or_(device_offline(now), device_low_battery()))
        .order_by(Device.last_seen.is_not(None), Device.last_seen, Device.id)
    )
    return _rows(session.execute(stmt), now)


STATUSES = ("offline", "low_battery", "ok")


def list_devices(
    session: Session,
    scope: Scope,
    now: datetime,
    *,
    q: str = "",
    kind: str = "",
    building: str = "",
    status: str = "",
    page: int = 1,
    per_page: int = 100,
) -> Page[DeviceRow]:
    """All devices, filtered: `q` matches device id, resident id or name; `status` is one of
    STATUSES. Two queries whatever the size."""
    conditions: list[ColumnElement[bool]] = [scope.residents(Device.resident_id)]
    if q.strip():
        like = q.strip()
        conditions.append(
            or_(
                Device.id.icontains(like, autoescape=True),
                Resident.id.icontains(like, autoescape=True),
                Resident.name.icontains(like, autoescape=True),
            )
        )
    if kind in DEVICE_KINDS:
        conditions.append(Device.kind == kind)
    if building:
        conditions.append(Resident.building == building)
    if status == "offline":
        conditions.append(device_offline(now))
    elif status == "low_battery":
        conditions.append(device_low_battery())
    elif status == "ok":
        conditions.append(~or_(device_offline(now), device_low_battery()))
    base = _device_select().where(*conditions)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        base.order_by(Resident.building, Resident.unit, Device.resident_id, Device.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return Page(_rows(rows, now), total, page, per_page)


def unknown_devices(session: Session, limit: int = 200) -> list[UnknownDevice]:
    """Ids heard on MQTT that no resident has, the most recently heard first."""
    stmt = select(UnknownDevice).order_by(UnknownDevice.last_seen.desc()).limit(limit)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    topic: str
    payload: str  # safe to show: bad bytes escaped, cut to PAYLOAD_SHOWN characters
    truncated: bool
    size: int
    error: str  # English
    error_message: Message | None  # the same, for the page to translate
    received_at: datetime


def payload_text(payload: bytes, limit: int = PAYLOAD_SHOWN) -> tuple[str, bool]:
    """A payload as text a page can show (the template escapes HTML): bytes that are not
    UTF-8 appear as \\xNN, control characters other than newline and tab as \\uNNNN; cut
    to `limit` characters. Returns (text, was it cut)."""
    text = payload.decode("utf-8", "backslashreplace")
    text = "".join(
        c
        if c in "\n\t" or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF)
        else f"\\u{ord(c):04x}"
        for c in text[: limit + 1]
    )
    if len(text) > limit:
        return text[:limit], True
    return text, False


def dead_letters(
    session: Session, *, topic: str = "", page: int = 1, per_page: int = 50
) -> Page[DeadLetterRow]:
    """Payloads we could not read, newest first; `topic` keeps topics containing it."""
    where = [DeadLetter.topic.icontains(topic.strip(), autoescape=True)] if topic.strip() else []
    total = session.scalar(select(func.count(DeadLetter.id)).where(*where)) or 0
    page = max(1, page)
    # Only the first bytes of each payload leave the database: a dead letter may be 64 kB.
    head = func.substr(DeadLetter.payload, 1, PAYLOAD_SHOWN * 4 + 4)
    stmt = (
        select(
            DeadLetter.id,
            DeadLetter.topic,
            head,
            func.length(DeadLetter.payload),
            DeadLetter.error,
            DeadLetter.error_message,
            DeadLetter.received_at,
        )
        .where(*where)
        .order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = []
    for id_, topic_, raw, size, error, said, received_at in session.execute(stmt):
        text, cut = payload_text(bytes(raw or b""))
        rows.append(
            DeadLetterRow(
                id_,
                topic_,
                text,
                cut or (size or 0) > len(raw or b""),
                size or 0,
                error,
                load(said),
                received_at,
            )
        )
    return Page(rows, total, page, per_page)


@dataclass(frozen=True)
class Summary:
    offline: int
    low_battery: int
    unknown: int
    dead_letters: int  # in the last 24 h
    devices: int
    dead_letters_total: int


def summary(session: Session, scope: Scope, now: datetime) -> Summary:
    """The counts at the top of the devices page, in three queries."""
    in_scope = scope.residents(Device.resident_id)
    offline, low, devices = session.execute(
        select(
            func.count().filter(device_offline(now)),
            func.count().filter(device_low_battery()),
            func.count(),
        )
        .select_from(Device)
        .where(in_scope)
    ).one()
    unknown = session.scalar(select(func.count()).select_from(UnknownDevice)) or 0
    recent, total = session.execute(
        select(
            func.count().filter(DeadLetter.received_at >= now - DEAD_LETTER_WINDOW), func.count()
        ).select_from(DeadLetter)
    ).one()
    return Summary(offline or 0, low or 0, unknown, recent or 0, devices or 0, total or 0)


# -- changing --------------------------------------------------------------------------


def check_kind(kind: str, field: str = "kind") -> str:
    kind = kind.strip()
    if kind not in DEVICE_KINDS:
        raise AdminError.one(
            field,
            N_("Choose a device kind: %(kinds)s."),
            kinds=", ".join(DEVICE_KINDS),
        )
    return kind


def check_device_id(device_id: str, field: str = "device_id") -> str:
    device_id = device_id.strip()
    if not device_id:
        raise AdminError.one(field, N_("Give the device id (its zigbee2mqtt friendly name)."))
    if len(device_id) > DEVICE_ID_MAX:
        raise AdminError.one(
            field, N_("A device id has at most %(n)s characters."), n=DEVICE_ID_MAX
        )
    if any(c in device_id for c in "#+\x00") or not device_id.isprintable():
        raise AdminError.one(
            field,
            N_('"%(value)s" cannot be a device id: it may not contain #, + or control characters.'),
            value=device_id,
        )
    return device_id


def _active_resident(session: Session, resident_id: str, field: str = "resident_id") -> Resident:
    resident = session.get(Resident, resident_id.strip()) if resident_id.strip() else None
    if resident is None:
        raise AdminError.one(field, N_("Choose a resident."))
    if not resident.active:
        raise AdminError.one(
            field,
            N_("%(name)s (%(id)s) is deactivated; reactivate them before giving them devices."),
            name=resident.name,
            id=resident.id,
        )
    return resident


def _device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise AdminError.one("device_id", N_("There is no device %(id)s."), id=device_id)
    return device


def assign_unknown(
    session: Session, device_id: str, resident_id: str, kind: str, actor: str, now: datetime
) -> Device:
    """Give an unknown device (heard on MQTT, registered to nobody) to a resident as a device
    of `kind`. Its next reading becomes an event of that resident once the ingestor has
    reloaded its registry."""
    kind = check_kind(kind)
    resident = _active_resident(session, resident_id)
    unknown = session.get(UnknownDevice, device_id)
    if session.get(Device, device_id) is not None:
        raise AdminError.one(
            "device_id", N_("Device %(id)s already belongs to a resident."), id=device_id
        )
    if unknown is None:
        raise AdminError.one(
            "device_id", N_("%(id)s is not in the list of unknown devices any more."), id=device_id
        )
    device = Device(
        id=device_id,
        resident_id=resident.id,
        kind=kind,
        created_at=now,
        # We did hear from it; its state is unknown until its next reading.
        last_seen=unknown.last_seen,
    )
    session.add(device)
    session.delete(unknown)
    record(
        session,
        actor,
        "device.assign",
        device_id,
        f"unknown device (topic {unknown.topic}, {unknown.messages} messages) "
        f"assigned to {resident.id} as {kind}",
        now,
    )
    session.flush()
    return device


def add_device(
    session: Session, resident_id: str, device_id: str, kind: str, actor: str, now: datetime
) -> Device:
    """A new device for a resident (e.g. a card fitted today)."""
    problems: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for check in (lambda: check_device_id(device_id), lambda: check_kind(kind)):
        try:
            check()
        except AdminError as e:
            problems.update(e.problems)
    if problems:
        raise AdminError(problems)
    device_id, kind = device_id.strip(), kind.strip()
    resident = _active_resident(session, resident_id)
    existing = session.get(Device, device_id)
    if existing is not None:
        raise AdminError.one(
            "device_id",
            N_("Device %(id)s already belongs to %(resident)s; move it from there instead."),
            id=device_id,
            resident=existing.resident_id,
        )
    unknown = session.get(UnknownDevice, device_id)
    device = Device(
        id=device_id,
        resident_id=resident.id,
        kind=kind,
        created_at=now,
        last_seen=unknown.last_seen if unknown else None,
    )
    session.add(device)
    if unknown is not None:
        session.delete(unknown)
    record(session, actor, "device.add", device_id, f"added to {resident.id} as {kind}", now)
    session.flush()
    return device


def change_kind(session: Session, device_id: str, kind: str, actor: str, now: datetime) -> Device:
    kind = check_kind(kind)
    device = _device(session, device_id)
    if device.kind == kind:
        return device
    old = device.kind
    device.kind = kind
    # A value of the old kind means nothing for the new one; nor does its time.
    device.state, device.state_at = None, None
    record(session, actor, "device.kind", device_id, f"{old} -> {kind} ({device.resident_id})", now)
    session.flush()
    return device


def move_device(
    session: Session, device_id: str, resident_id: str, actor: str, now: datetime
) -> Device:
    """Give a device to another resident. Its events so far stay with the old resident; its
    state stays what the device last said, but the new resident's board shows no door time
    from before the move (`moved_at`)."""
    device = _device(session, device_id)
    resident = _active_resident(session, resident_id)
    if device.resident_id == resident.id:
        raise AdminError.one(
            "resident_id", N_("%(id)s already belongs to this resident."), id=device_id
        )
    old = device.resident_id
    device.resident_id, device.moved_at = resident.id, now
    record(session, actor, "device.move", device_id, f"{old} -> {resident.id}", now)
    session.flush()
    close_departed_device_alerts(session, actor, now)
    return device


def remove_device(session: Session, device_id: str, actor: str, now: datetime) -> None:
    """Take a device away. Its past events stay; its readings from now on make it an
    unknown device again."""
    device = _device(session, device_id)
    record(
        session,
        actor,
        "device.remove",
        device_id,
        f"removed from {device.resident_id} (was {device.kind})",
        now,
    )
    session.execute(delete(Device).where(Device.id == device_id))
    session.flush()
    close_departed_device_alerts(session, actor, now)


def residents_for_select(session: Session) -> list[tuple[str, str, str, str]]:
    """(id, name, building, unit) of every active resident, for the assign and move forms."""
    stmt = (
        select(Resident.id, Resident.name, Resident.building, Resident.unit)
        .where(Resident.active)
        .order_by(Resident.building, Resident.unit, Resident.id)
    )
    return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]
