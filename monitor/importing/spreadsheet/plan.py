"""The plan an import previews, for a spreadsheet (`plan_sheet`) and the community file
(`plan_community`) alike: per resident what an import would create or change, every
problem, the residents no longer watched, and for the community file the people and
settings it changes. Nothing is written until `apply_plan`, which writes a plan without
problems through monitor.importing.apply, audited."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.importing.apply import (
    FILE_CONSENT,
    apply_residents,
    import_community,
    record_import,
)
from monitor.importing.community import (
    CommunityError,
    CommunitySpec,
    PersonSpec,
    ResidentSpec,
    quoted,
)
from monitor.importing.load import load_community
from monitor.importing.spreadsheet.reading import (
    COLUMNS,
    DEVICE_COLUMNS,
    MAX_BYTES,
    cell_named,
    file_problem,
    format_duration,
    read_sheet,
)
from monitor.importing.spreadsheet.rows import located, shape_row, spec_cells, split_cell
from monitor.importing.spreadsheet.stored import (
    Stored,
    device_owners,
    same_resident,
    stored_residents,
)
from monitor.importing.validate import check_community
from monitor.messages import N_, Problem
from monitor.models import Community, Person, Resident

# When no community file was ever imported (the web shows the same zone then).
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Change:
    """One column of a resident that an import changes ("" = none)."""

    column: str
    before: str
    after: str


@dataclass
class RowPlan:
    where: str  # "row 7" (spreadsheet) or "residents[6]" (community file)
    number: int  # the row number, or the place in the file counting from 1
    resident_id: str
    name: str
    status: str  # new | changed | unchanged | invalid
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    reactivated: bool = False  # no longer watched until now
    spec: ResidentSpec | None = None


@dataclass(frozen=True)
class PersonChange:
    id: str
    name: str
    status: str  # new | changed | removed
    fields: tuple[str, ...] = ()


@dataclass
class Plan:
    """What an import would do; `ok` when it may be applied (no problem anywhere)."""

    kind: str  # "sheet" | "community"
    timezone: str = DEFAULT_TIMEZONE
    community_exists: bool = True
    rows: list[RowPlan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # about the file as a whole
    retire: list[tuple[str, str]] = field(default_factory=list)  # (id, name) no longer watched
    people: list[PersonChange] = field(default_factory=list)
    settings: list[Change] = field(default_factory=list)  # community time zone, escalation
    retire_missing: bool = False
    community: CommunitySpec | None = None

    @property
    def problem_count(self) -> int:
        return len(self.problems) + sum(len(r.problems) for r in self.rows)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0 and bool(self.rows)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def counts(self) -> dict[str, int]:
        counts = {s: self.count(s) for s in ("new", "changed", "unchanged", "invalid")}
        counts["retired"] = len(self.retire)
        if self.kind == "community":
            for s in ("new", "changed", "removed"):
                counts[f"people_{s}"] = sum(1 for p in self.people if p.status == s)
        return counts

    def digest(self) -> str:
        """A fingerprint of everything the preview shows and everything apply would write."""
        shown = {
            "kind": self.kind,
            "timezone": self.timezone,
            "retire_missing": self.retire_missing,
            "problems": self.problems,
            "rows": [
                [r.where, r.resident_id, r.status, r.reactivated, r.problems]
                + [[c.column, c.before, c.after] for c in r.changes]
                for r in self.rows
            ],
            "retire": self.retire,
            "people": [[p.id, p.status, list(p.fields)] for p in self.people],
            "settings": [[c.column, c.before, c.after] for c in self.settings],
        }
        h = hashlib.sha256(json.dumps(shown, ensure_ascii=False, sort_keys=True).encode())
        for r in self.rows:
            h.update(repr(r.spec).encode())
        h.update(repr(self.community).encode())
        return h.hexdigest()


def _changes(before: ResidentSpec | None, after: ResidentSpec, zone: str) -> list[Change]:
    # A new resident in the community's own time zone need not say so.
    old = spec_cells(before) if before else {"timezone": zone}
    new = spec_cells(after)
    return [
        Change(c.key, old.get(c.key, ""), new[c.key])
        for c in COLUMNS
        if c.key not in ("id", "grace") and old.get(c.key, "") != new[c.key]
    ]


def _row_plan(
    where: str, number: int, spec: ResidentSpec, stored: Stored | None, zone: str
) -> RowPlan:
    plan = RowPlan(where, number, spec.id, spec.name, "unchanged", spec=spec)
    if stored is None:
        plan.status = "new"
    elif not stored.active or not same_resident(stored.spec, spec):
        plan.status = "changed"
        plan.reactivated = not stored.active
    if plan.status != "unchanged":
        plan.changes = _changes(stored.spec if stored else None, spec, zone)
    return plan


def community_timezone(session: Session) -> tuple[str, bool]:
    """The community's time zone, and whether a community file was ever imported."""
    zone = session.scalar(select(Community.timezone).where(Community.id == 1))
    return (zone, True) if zone else (DEFAULT_TIMEZONE, False)


def plan_sheet(session: Session, data: bytes, retire_missing: bool = False) -> Plan:
    """Compare a residents spreadsheet with the database; writes nothing."""
    zone, exists = community_timezone(session)
    sheet = read_sheet(data)
    plan = Plan("sheet", zone, exists, problems=list(sheet.problems), retire_missing=retire_missing)
    if not sheet.rows:
        return plan
    present = frozenset(sheet.columns)
    ids = [cells.get("id", "").strip() for _, cells in sheet.rows]
    in_file = set(ids)
    stored = stored_residents(session, [i for i in ids if i])
    named = [
        did
        for _, cells in sheet.rows
        for c in DEVICE_COLUMNS
        if c.key in present
        for did in split_cell(cells.get(c.key, ""))
    ]
    owners = device_owners(session, named)
    # The sheet has no column for a light's threshold: a device keeps the one it has.
    thresholds = {(did, o.kind): o.light_threshold for did, o in owners.items()}
    for s in stored.values():
        thresholds.update(((d.id, d.kind), d.light_threshold) for d in s.spec.devices)
    first_id: dict[str, int] = {}
    first_device: dict[str, tuple[int, str]] = {}

    for (n, cells), rid in zip(sheet.rows, ids, strict=True):
        old = stored.get(rid)
        row = shape_row(cells, present, spec_cells(old.spec) if old else {}, thresholds)
        problems = [
            Problem(cell_named(n, col, sheet.headers), message) for col, message in row.problems
        ]
        spec: ResidentSpec | None = None
        try:
            spec = check_community({"timezone": zone, "residents": [row.raw]}).residents[0]
        except CommunityError as exc:
            problems += [located(p, n, row, sheet.headers) for p in exc.problems]
        if rid in first_id:
            problems.append(
                Problem(
                    cell_named(n, "id", sheet.headers),
                    (
                        N_("resident id %(value)s is already used by row %(row)s"),
                        {"value": quoted(rid), "row": first_id[rid]},
                    ),
                )
            )
        elif rid:
            first_id[rid] = n
        for column, d in zip(row.device_columns, row.raw["devices"], strict=True):
            if first_id.get(rid) != n:
                break  # a second row for the same resident: said once, above
            did = d["id"]
            first = first_device.setdefault(did, (n, column))
            if first[0] != n:
                problems.append(
                    Problem(
                        cell_named(n, column, sheet.headers),
                        (
                            N_(
                                "device id %(value)s is already used by row %(row)s "
                                "(column %(column)s)"
                            ),
                            {"value": quoted(did), "row": first[0], "column": first[1]},
                        ),
                    )
                )
            owner = owners.get(did)
            if (
                owner is not None
                and owner.active
                and owner.resident_id not in in_file
                and not retire_missing
            ):
                problems.append(
                    Problem(
                        cell_named(n, column, sheet.headers),
                        (
                            N_(
                                "device %(value)s belongs to %(owner)s (%(name)s), who is not in "
                                "this file; remove it there first, or add that resident's row"
                            ),
                            {"value": quoted(did), "owner": owner.resident_id, "name": owner.name},
                        ),
                    )
                )
        problems = list(dict.fromkeys(problems))  # a bad grace column is said once
        if problems or spec is None:
            name = row.raw.get("name") or ""
            plan.rows.append(RowPlan(f"row {n}", n, rid, name, "invalid", problems=problems))
        else:
            plan.rows.append(_row_plan(f"row {n}", n, spec, old, zone))
    if retire_missing:
        plan.retire = [
            (r.id, r.name)
            for r in session.execute(
                select(Resident.id, Resident.name).where(Resident.active.is_(True))
            )
            if r.id not in in_file
        ]
        plan.retire.sort()
    return plan


def _escalation_text(steps: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"{format_duration(timedelta(seconds=s))} {who}" for s, who in steps)


def _person_shape(p: PersonSpec) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "language": p.language,
        "buildings": list(p.buildings),
        "resident": p.resident,
        "consent": p.consent,
        "notify": list(p.notify),
        "rota": [
            {"days": list(r.days), "from": f"{r.start:%H:%M}", "to": f"{r.end:%H:%M}"}
            for r in p.rota
        ],
        "quiet_hours": (
            {"from": f"{p.quiet_hours[0]:%H:%M}", "to": f"{p.quiet_hours[1]:%H:%M}"}
            if p.quiet_hours
            else None
        ),
        "digest": f"{p.digest:%H:%M}" if p.digest else None,
    }


def _stored_person_shape(p: Person) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "language": p.language,
        "buildings": list(p.buildings or []),
        "resident": p.resident_id,
        "consent": p.consent,
        "notify": list(p.notify or []),
        "rota": list(p.rota or []),
        "quiet_hours": p.quiet_hours or None,
        "digest": p.digest_at,
    }


def plan_community(session: Session, data: bytes) -> Plan:
    """Compare a community file with the database (as `apply_community` would write it:
    residents not in the file stop being watched, people not in it go); writes nothing."""
    zone, exists = community_timezone(session)
    plan = Plan("community", zone, exists)
    if len(data) > MAX_BYTES:
        plan.problems = [
            file_problem(N_("the file is larger than %(mb)s MB"), mb=MAX_BYTES // 2**20)
        ]
        return plan
    try:
        spec = load_community(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        plan.problems = [
            file_problem(N_("the file is not UTF-8 text; save it as UTF-8 and upload it again"))
        ]
        return plan
    except CommunityError as exc:
        plan.problems = list(exc.problems)
        return plan
    return community_plan(session, spec)


def community_plan(session: Session, spec: CommunitySpec) -> Plan:
    """What importing this community would do, as plan_community says it of a file (a CLI
    import, which has no preview, audits these counts too); writes nothing."""
    _, exists = community_timezone(session)
    plan = Plan("community", spec.timezone, exists, community=spec)
    stored = stored_residents(session)
    plan.rows = [
        _row_plan(f"residents[{i}]", i + 1, r, stored.get(r.id), spec.timezone)
        for i, r in enumerate(spec.residents)
    ]
    in_file = {r.id for r in spec.residents}
    plan.retire = sorted(
        (rid, s.spec.name) for rid, s in stored.items() if s.active and rid not in in_file
    )

    people = {p.id: p for p in session.scalars(select(Person))}
    for p in spec.people:
        row = people.get(p.id)
        if row is None:
            plan.people.append(PersonChange(p.id, p.name, "new"))
            continue
        new, old = _person_shape(p), _stored_person_shape(row)
        changed = tuple(k for k in new if new[k] != old[k])
        if changed:
            plan.people.append(PersonChange(p.id, p.name, "changed", changed))
    listed = {p.id for p in spec.people}
    plan.people += [
        PersonChange(row.id, row.name, "removed")
        for row in sorted(people.values(), key=lambda r: r.id)
        if row.id not in listed and row.consent_version in (None, FILE_CONSENT)
    ]

    community = session.get(Community, 1)
    if community is None or community.timezone != spec.timezone:
        plan.settings.append(
            Change("timezone", community.timezone if community else "", spec.timezone)
        )
    before = _escalation_text(
        (int(s.get("after_s", 0)), str(s.get("notify")))
        for s in (community.escalation if community else [])
    )
    after = _escalation_text((int(s.after.total_seconds()), s.notify) for s in spec.escalation)
    if before != after:
        plan.settings.append(Change("escalation", before, after))
    return plan


def apply_plan(
    session: Session, plan: Plan, now: datetime, actor: str, filename: str
) -> dict[str, int]:
    """Write a plan that has no problems, in the caller's transaction, with the audit line
    (monitor.importing.apply.record_import) naming the file and the counts; returns the
    counts. A community file goes the one way every community import goes,
    monitor.importing.apply.import_community."""
    if not plan.ok:
        raise ValueError("an import with problems cannot be applied")
    counts = plan.counts()
    if plan.kind == "community":
        assert plan.community is not None
        import_community(session, plan.community, now, actor, filename, counts)
        return counts
    if session.get(Community, 1) is None:
        session.add(Community(id=1, timezone=plan.timezone, escalation=[], imported_at=now))
    apply_residents(
        session,
        [r.spec for r in plan.rows if r.status in ("new", "changed") and r.spec is not None],
        now,
        retire=[rid for rid, _ in plan.retire],
    )
    record_import(session, now, actor, "import.spreadsheet", filename, counts)
    return counts
