"""What is stored, in the community file's shape: residents with their devices, active
routines and away periods (`stored_residents`), whether two specs say the same, and who owns
a device now. A few queries per 500 residents, never one per resident."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.importing.community import DeviceSpec, ResidentSpec, RoutineSpec
from monitor.importing.spreadsheet.rows import slot_order
from monitor.models import AwayPeriod, Device, Resident, Routine


@dataclass(frozen=True)
class Stored:
    spec: ResidentSpec
    active: bool


def chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    """`ids` a few hundred at a time, for IN lists: SQLite caps the values bound at once."""
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def stored_residents(session: Session, ids: Sequence[str] | None = None) -> dict[str, Stored]:
    """Residents as stored, in the shape of the file (active routines only): these `ids`,
    or all. A few queries per 500 residents, never one per resident."""
    groups: Iterable[list[str] | None] = [None] if ids is None else chunks(sorted(set(ids)))
    found: dict[str, Stored] = {}
    for chunk in groups:

        def where(column: Any, chunk: list[str] | None = chunk) -> Any:
            return column.in_(chunk) if chunk is not None else column.is_not(None)

        devices: dict[str, list[DeviceSpec]] = {}
        for d in session.execute(
            select(Device.id, Device.resident_id, Device.kind, Device.light_threshold).where(
                where(Device.resident_id)
            )
        ):
            devices.setdefault(d.resident_id, []).append(
                DeviceSpec(d.id, d.kind, float(d.light_threshold))
            )
        routines: dict[str, list[RoutineSpec]] = {}
        for x in session.scalars(
            select(Routine).where(where(Routine.resident_id), Routine.active.is_(True))
        ):
            routines.setdefault(x.resident_id, []).append(
                RoutineSpec(
                    x.kind,
                    time.fromisoformat(x.start) if x.start else None,
                    time.fromisoformat(x.end) if x.end else None,
                    timedelta(seconds=x.grace_s or 0),
                    x.hours,
                    x.slot,
                )
            )
        away: dict[str, list[tuple[date, date]]] = {}
        for a in session.scalars(select(AwayPeriod).where(where(AwayPeriod.resident_id))):
            away.setdefault(a.resident_id, []).append((a.first_day, a.last_day))
        for r in session.scalars(select(Resident).where(where(Resident.id))):
            spec = ResidentSpec(
                r.id,
                r.name,
                r.building,
                r.unit,
                r.timezone,
                devices.get(r.id, []),
                sorted(routines.get(r.id, []), key=slot_order),
                away.get(r.id, []),
                r.phone or "",
                r.contact or "",
                r.notes or "",
            )
            found[r.id] = Stored(spec, bool(r.active))
    return found


def same_resident(a: ResidentSpec, b: ResidentSpec) -> bool:
    def key(s: ResidentSpec) -> tuple[Any, ...]:
        return (
            s.name,
            s.building,
            s.unit,
            s.timezone,
            s.phone,
            s.contact,
            s.notes,
            sorted((d.kind, d.id, d.light_threshold) for d in s.devices),
            sorted(
                (x.slot, x.kind, str(x.start), str(x.end), x.grace, x.hours) for x in s.routines
            ),
            sorted(s.away),
        )

    return key(a) == key(b)


@dataclass(frozen=True)
class _Owner:
    resident_id: str
    name: str
    active: bool
    kind: str
    light_threshold: float


def device_owners(session: Session, ids: Sequence[str]) -> dict[str, _Owner]:
    owners: dict[str, _Owner] = {}
    for chunk in chunks(sorted(set(ids))):
        for d in session.execute(
            select(
                Device.id,
                Device.resident_id,
                Device.kind,
                Device.light_threshold,
                Resident.name,
                Resident.active,
            )
            .join(Resident, Resident.id == Device.resident_id)
            .where(Device.id.in_(chunk))
        ):
            owners[d.id] = _Owner(
                d.resident_id, d.name, bool(d.active), d.kind, float(d.light_threshold)
            )
    return owners
