"""The community file (docs/contracts.md, "The community file"): every validation rule with
the exact message a staff member reads, and what an import does to the database: nothing
when the file is rejected, nothing when it is imported twice, updates in place when it
changes. No broker: a Runtime on a simulated clock, readings fed to its ingestor directly."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from support.watch import COMMUNITY, local

from curtainwatch.cli import main
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.importing.community import CommunityError, CommunitySpec
from monitor.importing.load import load_community
from monitor.models import (
    Alert,
    AwayPeriod,
    Device,
    Event,
    Person,
    Resident,
    Routine,
    Settlement,
    UnknownDevice,
)
from sensors.ingest import Message

DAY = "2026-11-23"
START = local(DAY, "05:00")

DEVICE_KINDS = "curtain, door, light, help, motion, contact, power, water"
ROUTINE_KINDS = "curtain_open, curtain_close, light_on, door, activity, inactivity, help"
RESIDENT_FIELDS = (
    "id, name, building, unit, timezone, devices, routines, away, phone, contact, notes"
)
PERSON_FIELDS = (
    "id, name, role, language, buildings, resident, consent, notify, rota, quiet_hours, digest"
)

# The first example of docs/contracts.md, plus a second resident and a family member of each role.
FULL = """
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices:
      - {id: curtain-301, kind: curtain}
      - {id: door-301, kind: door}
      - {id: light-301, kind: light}
      - {id: card-301, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
      - {kind: curtain_close, start: "18:00", end: "22:30"}
      - {kind: light_on, start: "17:30", end: "21:00"}
      - {kind: door, start: "06:00", end: "22:00"}
      - {kind: inactivity, hours: 12}
    away: [{from: "2026-12-01", to: "2026-12-07"}]
  - id: r-302
    name: Zhao Guiying
    building: "3"
    unit: "302"
    devices:
      - {id: curtain-302, kind: curtain}
      - {id: card-302, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
people:
  - {id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], notify: ["ntfy://ntfy.example.org/li-ming"]}
  - {id: s-chen, name: Chen Fang, role: staff, notify: ["mailto://chen:pass@mail.example.org"]}
  - {id: f-wang, name: Wang Jun, role: family, resident: r-301, consent: "2026-11-20", notify: ["tgram://bottoken/chatid"]}
escalation:
  - {after: 0m, notify: volunteers}
  - {after: 15m, notify: staff}
  - {after: 30m, notify: family}
"""  # noqa: E501

TABLES = {
    "residents": Resident,
    "devices": Device,
    "routines": Routine,
    "away_periods": AwayPeriod,
    "people": Person,
}


# -- helpers ---------------------------------------------------------------------------------


def make_runtime(db_url: str, at: datetime = START) -> Runtime:
    return Runtime(Settings(database_url=db_url), SimulatedClock(at))


def problems(text: str) -> list[str]:
    with pytest.raises(CommunityError) as err:
        load_community(text)
    assert str(err.value).startswith("community file rejected:")
    return err.value.problems


DEVICES = "[{id: curtain-1, kind: curtain}, {id: door-1, kind: door}]"
ROUTINES = '[{kind: curtain_open, start: "07:00", end: "09:00"}]'


def home(
    devices: str = DEVICES,
    routines: str = ROUTINES,
    extra: str = "",
    tail: str = "",
    head: str = "timezone: Asia/Shanghai",
) -> str:
    """A one-resident file; `extra` adds lines to the resident (4-space indent), `tail` adds
    top-level sections."""
    return (
        f'{head}\nresidents:\n  - id: r-1\n    name: Wang Shulan\n    building: "3"\n'
        f"    devices: {devices}\n    routines: {routines}\n{extra}{tail}"
    )


def routine(fields: str) -> str:
    return f"[{{kind: curtain_open, {fields}}}]"


def with_device(device: str) -> str:
    return f"[{{id: curtain-1, kind: curtain}}, {{id: door-1, kind: door}}, {device}]"


def person(fields: str) -> str:
    return f"people:\n  - {{{fields}}}\n"


def step(fields: str) -> str:
    return f"escalation:\n  - {{{fields}}}\n"


def snapshot(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, in a comparable form."""
    with rt.db.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return {
            n: sorted(repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{n}"'))
            for n in names
        }


def counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s:
        return {
            name: s.scalar(select(func.count()).select_from(model)) or 0
            for name, model in TABLES.items()
        }


def routines(rt: Runtime, **where: Any) -> list[Routine]:
    with rt.sessions() as s:
        return list(s.scalars(select(Routine).filter_by(**where).order_by(Routine.id)))


def device(rt: Runtime, device_id: str) -> Device | None:
    with rt.sessions() as s:
        return s.get(Device, device_id)


def feed(rt: Runtime, at: datetime, *messages: tuple[str, object]) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(at)
    rt.ingestor.process(
        [Message(t, json.dumps(p).encode(), at.astimezone(UTC)) for t, p in messages]
    )


def events(rt: Runtime, **where: Any) -> list[Event]:
    with rt.sessions() as s:
        return list(s.scalars(select(Event).filter_by(**where).order_by(Event.id)))


def utc(day: str, hm: str) -> datetime:
    return local(day, hm).astimezone(UTC)


# -- validation: one case per rule, exact wording ---------------------------------------------


def test_the_template_files_are_valid() -> None:
    """The files the cases below start from are themselves accepted."""
    spec = load_community(home())
    assert [r.id for r in spec.residents] == ["r-1"]
    assert isinstance(load_community(FULL), CommunitySpec)
    assert isinstance(load_community(COMMUNITY), CommunitySpec)


REJECTED = [
    # times
    pytest.param(
        home(routines=routine('start: "07:00", end: "25:00"')),
        ['residents[0].routines[0].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)'],
        id="end-25:00",
    ),
    pytest.param(
        home(routines=routine('start: 7:30, end: "09:00"')),
        ['residents[0].routines[0].start: 450 is not a time; write times in quotes, like "07:30"'],
        id="unquoted-7:30",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: 9:15')),
        ['residents[0].routines[0].end: 555 is not a time; write times in quotes, like "09:15"'],
        id="unquoted-9:15",
    ),
    pytest.param(
        home(routines=routine('start: 7.5, end: "09:00"')),
        ['residents[0].routines[0].start: 7.5 is not a time (expected "HH:MM", in quotes)'],
        id="time-number",
    ),
    pytest.param(
        home(routines=routine('start: "07:00:00", end: "09:00"')),
        [
            'residents[0].routines[0].start: "07:00:00" is not a time '
            '(expected "HH:MM", 00:00 to 23:59)'
        ],
        id="time-seconds",
    ),
    pytest.param(
        home(routines=routine('start: "07:60", end: "09:00"')),
        [
            'residents[0].routines[0].start: "07:60" is not a time '
            '(expected "HH:MM", 00:00 to 23:59)'
        ],
        id="time-minute-60",
    ),
    pytest.param(
        home(routines=routine('end: "09:00"')),
        ["residents[0].routines[0].start: is missing"],
        id="start-missing",
    ),
    pytest.param(
        home(routines="[{kind: curtain_open}]"),
        ["residents[0].routines[0].start: is missing", "residents[0].routines[0].end: is missing"],
        id="start-and-end-missing",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "07:00"')),
        ["residents[0].routines[0].end: the window 07:00–07:00 is empty"],
        id="empty-window",
    ),
    # durations
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: soon')),
        ['residents[0].routines[0].grace: "soon" is not a duration (expected like "15m" or "1h")'],
        id="grace-word",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: -5')),
        ['residents[0].routines[0].grace: -5 is not a duration (expected like "15m" or "1h")'],
        id="grace-negative",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: ""')),
        ['residents[0].routines[0].grace: "" is not a duration (expected like "15m" or "1h")'],
        id="grace-empty",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: 1.5')),
        ['residents[0].routines[0].grace: 1.5 is not a duration (expected like "15m" or "1h")'],
        id="grace-fraction",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: 15 min')),
        [
            'residents[0].routines[0].grace: "15 min" is not a duration '
            '(expected like "15m" or "1h")'
        ],
        id="grace-spelled",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", grace: 13h')),
        ['residents[0].routines[0].grace: "13h" is longer than the 12 hours grace allows'],
        id="grace-too-long",
    ),
    # routine kinds and the devices they need
    pytest.param(
        home(routines='[{kind: curtain_opne, start: "07:00", end: "09:00"}]'),
        [f'residents[0].routines[0].kind: "curtain_opne" is not a routine kind ({ROUTINE_KINDS})'],
        id="routine-kind-unknown",
    ),
    pytest.param(
        home(routines='[{start: "07:00", end: "09:00"}]'),
        [f"residents[0].routines[0].kind: is missing ({ROUTINE_KINDS})"],
        id="routine-kind-missing",
    ),
    pytest.param(
        home(routines='[{kind: light_on, start: "17:30", end: "21:00"}]'),
        [
            "residents[0].routines[0].kind: routine light_on needs a light device, "
            "and this resident has none"
        ],
        id="light-routine-without-light",
    ),
    pytest.param(
        home(devices="[{id: door-1, kind: door}]"),
        [
            "residents[0].routines[0].kind: routine curtain_open needs a curtain device, "
            "and this resident has none"
        ],
        id="curtain-routine-without-curtain",
    ),
    pytest.param(
        home(routines="[{kind: help}]"),
        [
            "residents[0].routines[0].kind: routine help needs a help device, "
            "and this resident has none"
        ],
        id="help-routine-without-card",
    ),
    pytest.param(
        home(devices="[]", routines='[{kind: activity, start: "05:00", end: "11:00"}]'),
        [
            "residents[0].routines[0].kind: routine activity needs at least one device, "
            "and this resident has none"
        ],
        id="activity-without-devices",
    ),
    pytest.param(
        home(devices="[]", routines="[{kind: inactivity, hours: 12}]"),
        [
            "residents[0].routines[0].kind: routine inactivity needs at least one device, "
            "and this resident has none"
        ],
        id="inactivity-without-devices",
    ),
    pytest.param(
        home(routines="[{kind: inactivity, hours: 0}]"),
        ["residents[0].routines[0].hours: 0 is not a number of hours (more than 0, at most 168)"],
        id="inactivity-0h",
    ),
    pytest.param(
        home(routines="[{kind: inactivity, hours: 200}]"),
        ["residents[0].routines[0].hours: 200 is not a number of hours (more than 0, at most 168)"],
        id="inactivity-200h",
    ),
    pytest.param(
        home(routines='[{kind: inactivity, hours: "12"}]'),
        [
            'residents[0].routines[0].hours: "12" is not a number of hours (more than 0, at most 168)'
        ],
        id="inactivity-hours-quoted",
    ),
    pytest.param(
        home(routines="[{kind: inactivity}]"),
        ["residents[0].routines[0].hours: is missing (how many hours without activity)"],
        id="inactivity-hours-missing",
    ),
    pytest.param(
        home(
            routines='[{kind: curtain_open, start: "07:00", end: "09:00"}, '
            '{kind: curtain_open, start: "07:00", end: "09:00", grace: 5m}]'
        ),
        [
            'residents[0].routines[1]: routine "curtain_open 07:00–09:00" is already '
            "used by residents[0].routines[0]"
        ],
        id="duplicate-routine",
    ),
    pytest.param(
        home(routines="[{kind: inactivity, hours: 12}, {kind: inactivity, hours: 6}]"),
        [
            'residents[0].routines[1]: routine "inactivity" is already used by '
            "residents[0].routines[0]"
        ],
        id="duplicate-inactivity",
    ),
    pytest.param(
        home(routines=routine('start: "07:00", end: "09:00", days: weekdays')),
        ["residents[0].routines[0].days: unknown field (allowed: kind, start, end, grace, hours)"],
        id="routine-unknown-field",
    ),
    pytest.param(
        home(routines="[curtain_open]"),
        ['residents[0].routines[0]: expected a mapping, got "curtain_open"'],
        id="routine-not-mapping",
    ),
    pytest.param(
        home(routines="curtain_open"),
        ['residents[0].routines: expected a list, got "curtain_open"'],
        id="routines-not-list",
    ),
    # devices
    pytest.param(
        home(devices=with_device("{id: lamp-1, kind: lamp}")),
        [f'residents[0].devices[2].kind: "lamp" is not a device kind ({DEVICE_KINDS})'],
        id="device-kind-unknown",
    ),
    pytest.param(
        home(devices=with_device("{id: lamp-1}")),
        [f"residents[0].devices[2].kind: is missing ({DEVICE_KINDS})"],
        id="device-kind-missing",
    ),
    pytest.param(
        home(devices=with_device("{kind: light}")),
        ["residents[0].devices[2].id: is missing"],
        id="device-id-missing",
    ),
    pytest.param(
        home(devices=with_device('{id: "  ", kind: light}')),
        ["residents[0].devices[2].id: is empty"],
        id="device-id-blank",
    ),
    pytest.param(
        home(devices=with_device("{id: light-1, kind: light, model: IKEA}")),
        ["residents[0].devices[2].model: unknown field (allowed: id, kind, light_threshold)"],
        id="device-unknown-field",
    ),
    pytest.param(
        home(devices=with_device("{id: light-1, kind: light, light_threshold: -1}")),
        ["residents[0].devices[2].light_threshold: -1 is not a number of lux"],
        id="light-threshold-negative",
    ),
    pytest.param(
        home(devices=with_device("{id: light-1, kind: light, light_threshold: dim}")),
        ['residents[0].devices[2].light_threshold: "dim" is not a number of lux'],
        id="light-threshold-word",
    ),
    pytest.param(
        home(devices="[{id: curtain-1, kind: curtain}, door-1]"),
        ['residents[0].devices[1]: expected a mapping, got "door-1"'],
        id="device-not-mapping",
    ),
    pytest.param(
        home(devices="curtain-1", routines="[]"),
        ['residents[0].devices: expected a list, got "curtain-1"'],
        id="devices-not-list",
    ),
    # the resident itself
    pytest.param(
        home(extra="    mobile: 123\n"),
        [f"residents[0].mobile: unknown field (allowed: {RESIDENT_FIELDS})"],
        id="resident-unknown-field",
    ),
    pytest.param(
        home(extra="    timezone: Asia/Shanghia\n"),
        ['residents[0].timezone: "Asia/Shanghia" is not a known time zone (like "Asia/Shanghai")'],
        id="resident-timezone-unknown",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\nresidents:\n  - {name: '', building: [3], unit: 301}\n",
        [
            "residents[0].id: is missing",
            "residents[0].name: is empty",
            "residents[0].building: [3] is not text",
        ],
        id="resident-id-name-building",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\nresidents:\n  - {id: r-1, name: Wang}\n",
        ["residents[0].building: is missing"],
        id="resident-building-missing",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\nresidents: [r-1]\n",
        ['residents[0]: expected a mapping, got "r-1"'],
        id="resident-not-mapping",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\nresidents: r-1\n",
        ['residents: expected a list, got "r-1"'],
        id="residents-not-list",
    ),
    # away
    pytest.param(
        home(extra='    away: [{from: "2026-12-07", to: "2026-12-01"}]\n'),
        ["residents[0].away[0].to: 2026-12-01 is before 2026-12-07"],
        id="away-to-before-from",
    ),
    pytest.param(
        home(extra="    away: [{from: 2026-12-07, to: 2026-12-01}]\n"),
        ["residents[0].away[0].to: 2026-12-01 is before 2026-12-07"],
        id="away-to-before-from-unquoted",
    ),
    pytest.param(
        home(extra='    away: [{from: "2026-12-01"}]\n'),
        ["residents[0].away[0]: needs both from and to dates"],
        id="away-without-to",
    ),
    pytest.param(
        home(extra='    away: [{from: "2026-12-32", to: "1 December"}]\n'),
        [
            'residents[0].away[0].from: "2026-12-32" is not a date (expected "YYYY-MM-DD")',
            'residents[0].away[0].to: "1 December" is not a date (expected "YYYY-MM-DD")',
        ],
        id="away-bad-dates",
    ),
    pytest.param(
        home(extra='    away: [{from: "2026-12-01", to: "2026-12-07", why: trip}]\n'),
        ["residents[0].away[0].why: unknown field (allowed: from, to)"],
        id="away-unknown-field",
    ),
    # the top of the file and the community time zone
    pytest.param(
        "- r-1\n- r-2\n", ['(file): expected a mapping, got ["r-1", "r-2"]'], id="file-is-a-list"
    ),
    pytest.param(
        home(tail="colour: blue\n"),
        ["(file).colour: unknown field (allowed: timezone, residents, people, escalation)"],
        id="top-unknown-field",
    ),
    pytest.param(
        home(head=""),
        ['timezone: is missing (the community\'s time zone, like "Asia/Shanghai")'],
        id="timezone-missing",
    ),
    pytest.param(
        home(head="timezone: Mars/Olympus_Mons"),
        ['timezone: "Mars/Olympus_Mons" is not a known time zone (like "Asia/Shanghai")'],
        id="timezone-unknown",
    ),
    pytest.param(
        home(head="timezone: +8"),
        ['timezone: 8 is not a time zone (like "Asia/Shanghai")'],
        id="timezone-number",
    ),
    pytest.param(
        home(head="timezone:"),
        ['timezone: null is not a time zone (like "Asia/Shanghai")'],
        id="timezone-empty",
    ),
    # duplicates
    pytest.param(
        "timezone: Asia/Shanghai\nresidents:\n"
        "  - {id: r-1, name: A, building: '3', devices: [{id: door-1, kind: door}]}\n"
        "  - {id: r-1, name: B, building: '3', devices: [{id: door-2, kind: door}]}\n",
        ['residents[1]: resident id "r-1" is already used by residents[0]'],
        id="duplicate-resident",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\nresidents:\n"
        "  - {id: r-1, name: A, building: '3', devices: [{id: door-1, kind: door}]}\n"
        "  - {id: r-2, name: B, building: '3', devices: [{id: door-1, kind: door}]}\n",
        ['residents[1].devices[0]: device id "door-1" is already used by residents[0].devices[0]'],
        id="duplicate-device",
    ),
    pytest.param(
        home(devices="[{id: curtain-1, kind: curtain}, {id: curtain-1, kind: curtain}]"),
        [
            'residents[0].devices[1]: device id "curtain-1" is already used by '
            "residents[0].devices[0]"
        ],
        id="duplicate-device-same-resident",
    ),
    pytest.param(
        home(
            tail="people:\n  - {id: s-1, name: Chen, role: staff}\n"
            "  - {id: s-1, name: Fang, role: staff}\n"
        ),
        ['people[1]: person id "s-1" is already used by people[0]'],
        id="duplicate-person",
    ),
    # people
    pytest.param(
        home(tail=person("id: f-1, name: Wang Jun, role: family, resident: r-9")),
        ['people[0].resident: "r-9" is not a resident in this file'],
        id="family-of-missing-resident",
    ),
    pytest.param(
        home(tail=person("id: f-1, name: Wang Jun, role: family")),
        ["people[0].resident: null is not a resident in this file"],
        id="family-without-resident",
    ),
    pytest.param(
        home(tail=person("id: p-1, name: Li, role: boss")),
        ['people[0].role: "boss" is not a role (volunteer, staff, family)'],
        id="role-unknown",
    ),
    pytest.param(
        home(tail=person("id: p-1, name: Li")),
        ["people[0].role: is missing (volunteer, staff, family)"],
        id="role-missing",
    ),
    pytest.param(
        home(tail=person("id: p-1, name: Li, role: staff, language: fr")),
        ['people[0].language: "fr" is not a language (zh-CN, en)'],
        id="language",
    ),
    pytest.param(
        home(tail=person("id: v-1, name: Li, role: volunteer")),
        ["people[0].buildings: a volunteer needs the buildings they cover"],
        id="volunteer-without-buildings",
    ),
    pytest.param(
        home(tail=person("id: v-1, name: Li, role: volunteer, buildings: 3")),
        [
            "people[0].buildings: expected a list, got 3",
            "people[0].buildings: a volunteer needs the buildings they cover",
        ],
        id="buildings-not-list",
    ),
    pytest.param(
        home(
            tail=person("id: s-1, name: Li, role: staff, notify: [li@example.org, 5, 'ntfy://h/t']")
        ),
        [
            'people[0].notify[0]: "li@example.org" is not a notification URL '
            '(like "ntfy://host/topic")',
            'people[0].notify[1]: 5 is not a notification URL (like "ntfy://host/topic")',
        ],
        id="notify-not-url",
    ),
    pytest.param(
        home(tail=person("id: s-1, name: Li, role: staff, notify: 'ntfy://h/t'")),
        ['people[0].notify: expected a list, got "ntfy://h/t"'],
        id="notify-not-list",
    ),
    pytest.param(
        home(tail=person("id: f-1, name: Wang Jun, role: family, resident: r-1, consent: soon")),
        ['people[0].consent: "soon" is not a date (expected "YYYY-MM-DD")'],
        id="consent-not-date",
    ),
    pytest.param(
        home(tail=person("name: Li, role: staff, phone: 123")),
        [f"people[0].phone: unknown field (allowed: {PERSON_FIELDS})", "people[0].id: is missing"],
        id="person-unknown-field-and-no-id",
    ),
    pytest.param(
        home(tail=person("id: s-1, role: staff")),
        ["people[0].name: is missing"],
        id="person-name-missing",
    ),
    pytest.param(
        home(tail="people: [Li Ming]\n"),
        ['people[0]: expected a mapping, got "Li Ming"'],
        id="person-not-mapping",
    ),
    pytest.param(
        home(tail="people: Li Ming\n"),
        ['people: expected a list, got "Li Ming"'],
        id="people-not-list",
    ),
    # duty rota, quiet hours, digest
    pytest.param(
        home(
            tail=person(
                "id: s-1, name: Li, role: staff, "
                "rota: [{days: someday, from: '08:00', to: '17:00'}]"
            )
        ),
        [
            'people[0].rota[0].days: "someday" is not a list of weekdays '
            '(like [mon, wed] or "mon-fri")'
        ],
        id="rota-days-word",
    ),
    pytest.param(
        home(
            tail=person(
                "id: s-1, name: Li, role: staff, "
                "rota: [{days: [mon, 3], from: '08:00', to: '17:00'}]"
            )
        ),
        [
            'people[0].rota[0].days: ["mon", 3] is not a list of weekdays '
            '(like [mon, wed] or "mon-fri")'
        ],
        id="rota-days-number",
    ),
    pytest.param(
        home(
            tail=person(
                "id: s-1, name: Li, role: staff, rota: [{days: mon-fri, to: 17:00, shift: early}]"
            )
        ),
        [
            "people[0].rota[0].shift: unknown field (allowed: days, from, to)",
            "people[0].rota[0].from: is missing",
            'people[0].rota[0].to: 1020 is not a time; write times in quotes, like "17:00"',
        ],
        id="rota-spell-fields",
    ),
    pytest.param(
        home(tail=person("id: s-1, name: Li, role: staff, rota: mon-fri")),
        ['people[0].rota: expected a list, got "mon-fri"'],
        id="rota-not-list",
    ),
    pytest.param(
        home(tail=person("id: s-1, name: Li, role: staff, rota: [mon-fri]")),
        ['people[0].rota[0]: expected a mapping, got "mon-fri"'],
        id="rota-spell-not-mapping",
    ),
    pytest.param(
        home(tail=person("id: s-1, name: Li, role: staff, quiet_hours: '22:00-07:00'")),
        ['people[0].quiet_hours: expected a mapping, got "22:00-07:00"'],
        id="quiet-hours-not-mapping",
    ),
    pytest.param(
        home(
            tail=person(
                "id: s-1, name: Li, role: staff, quiet_hours: {from: '22:00', till: '07:00'}"
            )
        ),
        [
            "people[0].quiet_hours.till: unknown field (allowed: from, to)",
            "people[0].quiet_hours.to: is missing",
        ],
        id="quiet-hours-fields",
    ),
    pytest.param(
        home(
            tail=person("id: s-1, name: Li, role: staff, quiet_hours: {from: '22:00', to: '7am'}")
        ),
        ['people[0].quiet_hours.to: "7am" is not a time (expected "HH:MM", 00:00 to 23:59)'],
        id="quiet-hours-bad-time",
    ),
    pytest.param(
        home(tail=person("id: s-1, name: Li, role: staff, digest: '20:00'")),
        ["people[0].digest: only family members receive a daily digest"],
        id="digest-not-family",
    ),
    pytest.param(
        home(tail=person("id: f-1, name: Li, role: family, resident: r-1, digest: 8pm")),
        ['people[0].digest: "8pm" is not a time (expected "HH:MM", 00:00 to 23:59)'],
        id="digest-bad-time",
    ),
    # escalation
    pytest.param(
        home(tail=step("after: soon, notify: staff")),
        ['escalation[0].after: "soon" is not a duration (expected like "15m" or "1h")'],
        id="escalation-after-word",
    ),
    pytest.param(
        home(tail=step("notify: staff")),
        ["escalation[0].after: is missing"],
        id="escalation-after-missing",
    ),
    pytest.param(
        home(tail=step("after: 15m, notify: everyone")),
        ['escalation[0].notify: "everyone" is not one of volunteers, staff, family'],
        id="escalation-target",
    ),
    pytest.param(
        home(tail=step("after: 15m, notify: staff, repeat: 3")),
        ["escalation[0].repeat: unknown field (allowed: after, notify)"],
        id="escalation-unknown-field",
    ),
    pytest.param(
        home(tail="escalation: [15m]\n"),
        ['escalation[0]: expected a mapping, got "15m"'],
        id="escalation-not-mapping",
    ),
    pytest.param(
        home(tail="escalation: staff\n"),
        ['escalation: expected a list, got "staff"'],
        id="escalation-not-list",
    ),
    # YAML that does not parse: line and column of the problem
    pytest.param(
        "timezone: Asia/Shanghai\nresidents:\n  - {id: r-1, name: [oops}\n",
        ["line 3, column 26: not valid YAML (expected ',' or ']', but got '}')"],
        id="yaml-unclosed-bracket",
    ),
    pytest.param(
        "timezone: Asia/Shanghai\n\tresidents: []\n",
        [
            "line 2, column 1: not valid YAML "
            "(found character '\\t' that cannot start any token; indent with spaces, not tabs)"
        ],
        id="yaml-tab",
    ),
    pytest.param(
        'timezone: Asia/Shanghai\nresidents:\n  - id: r-1\n    name: "Wang\n',
        ["line 5, column 1: not valid YAML (found unexpected end of stream)"],
        id="yaml-unclosed-quote",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REJECTED)
def test_rejected_with_exact_problems(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_a_number_too_long_for_python_is_a_problem_not_a_crash() -> None:
    grace = "9" * 5000 + "m"  # int() refuses more than 4,300 digits
    text = home(routines=routine(f'start: "07:00", end: "09:00", grace: "{grace}"'))
    assert problems(text) == [f'residents[0].routines[0].grace: "{grace}" is longer than a week']


def test_a_number_too_long_for_a_float_is_a_problem_not_a_crash() -> None:
    grace = "9" * 400 + "h"  # an int, but a float of it overflows
    text = home(routines=routine(f'start: "07:00", end: "09:00", grace: "{grace}"'))
    assert problems(text) == [f'residents[0].routines[0].grace: "{grace}" is longer than a week']


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = """
timezone: Asia/Shanghai
residents:
  - id: r-1
    name: Wang Shulan
    building: "3"
    devices:
      - {id: curtain-1, kind: curtain}
      - {id: lamp-1, kind: lamp}
    routines:
      - {kind: curtain_open, start: 7:30, end: "25:00", grace: soon}
      - {kind: inactivity, hours: 0}
    away: [{from: "2026-12-07", to: "2026-12-01"}]
  - id: r-2
    name: Zhao Guiying
    building: "3"
    devices: [{id: curtain-1, kind: curtain}]
people:
  - {id: f-1, name: Wang Jun, role: family, resident: r-9}
  - {id: v-1, name: Li Ming, role: volunteer}
escalation:
  - {after: 15m, notify: everyone}
"""
    assert problems(text) == [
        f'residents[0].devices[1].kind: "lamp" is not a device kind ({DEVICE_KINDS})',
        'residents[0].routines[0].start: 450 is not a time; write times in quotes, like "07:30"',
        'residents[0].routines[0].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)',
        'residents[0].routines[0].grace: "soon" is not a duration (expected like "15m" or "1h")',
        "residents[0].routines[1].hours: 0 is not a number of hours (more than 0, at most 168)",
        "residents[0].away[0].to: 2026-12-01 is before 2026-12-07",
        'residents[1].devices[0]: device id "curtain-1" is already used by residents[0].devices[0]',
        'people[0].resident: "r-9" is not a resident in this file',
        "people[1].buildings: a volunteer needs the buildings they cover",
        'escalation[0].notify: "everyone" is not one of volunteers, staff, family',
    ]


def test_the_rejection_message_lists_every_problem_on_its_own_line() -> None:
    text = home(routines=routine('start: "07:00", end: "25:00", grace: soon'))
    with pytest.raises(CommunityError) as err:
        load_community(text)
    assert str(err.value).splitlines() == ["community file rejected:"] + [
        "  " + p for p in err.value.problems
    ]
    assert len(err.value.problems) == 2


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"]
)
def test_an_empty_file_is_rejected(text: str) -> None:
    assert len(problems(text)) == 1


def test_an_empty_file_says_so() -> None:
    assert problems("") == ["the file is empty"]


def test_a_family_member_is_not_blamed_for_a_problem_of_their_resident() -> None:
    text = home(
        routines=routine('start: "07:00", end: "25:00"'),
        tail=person("id: f-1, name: Wang Jun, role: family, resident: r-1"),
    )
    assert problems(text) == [
        'residents[0].routines[0].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)'
    ]


# -- validation: what is accepted, and what it means --------------------------------------------


def test_accepted_values_and_defaults() -> None:
    text = home(
        devices="[{id: curtain-1, kind: curtain}, {id: light-1, kind: light, light_threshold: 12}]",
        routines='[{kind: curtain_open, start: "7:00", end: " 09:30 "}, '
        '{kind: curtain_close, start: "18:00", end: "01:00", grace: 1h30m}, '
        '{kind: light_on, start: "17:30", end: "21:00", grace: 15}, '
        "{kind: inactivity, hours: 12.5}]",
        extra="    unit: 301\n    timezone: Europe/Amsterdam\n"
        "    away: [{from: 2026-12-01, to: '2026-12-01'}]\n",
        tail="people:\n  - {id: f-1, name: Wang Jun, role: family, resident: r-1}\n"
        "  - {id: v-1, name: Li, role: volunteer, buildings: [3], language: en}\n"
        "escalation:\n  - {after: 0, notify: volunteers}\n  - {after: 1h, notify: staff}\n",
    )
    spec = load_community(text)
    (r,) = spec.residents
    assert (r.unit, r.timezone, spec.timezone) == ("301", "Europe/Amsterdam", "Asia/Shanghai")
    assert [d.light_threshold for d in r.devices] == [30.0, 12.0]
    opened, closed, light, quiet = r.routines
    assert (opened.start, opened.end, opened.grace) == (time(7), time(9, 30), timedelta(0))
    assert closed.grace == timedelta(hours=1, minutes=30)
    assert light.grace == timedelta(minutes=15)  # a bare number is minutes
    assert (quiet.kind, quiet.hours, quiet.start) == ("inactivity", 12.5, None)
    assert r.away == [(date(2026, 12, 1), date(2026, 12, 1))]
    family, volunteer = spec.people
    assert (family.resident, family.consent, family.language) == ("r-1", None, "zh-CN")
    assert (volunteer.buildings, volunteer.language) == (["3"], "en")
    assert [(s.after, s.notify) for s in spec.escalation] == [
        (timedelta(0), "volunteers"),
        (timedelta(hours=1), "staff"),
    ]


def test_rota_quiet_hours_and_digest_are_accepted() -> None:
    spec = load_community(
        home(
            tail=(
                "people:\n"
                "  - {id: s-1, name: Li, role: staff, quiet_hours: {from: '22:00', to: '07:00'},\n"
                "     rota: [{days: fri-mon, from: '22:00', to: '06:00'}, {from: '08:00', to: '09:00'},\n"
                "            {days: [tue, Thu], from: '12:00', to: '13:00'}]}\n"
                "  - {id: f-1, name: Wang Jun, role: family, resident: r-1, digest: '20:30'}\n"
            )
        )
    )
    staff, family = spec.people
    assert [(x.days, x.start, x.end) for x in staff.rota] == [
        ((0, 4, 5, 6), time(22), time(6)),  # fri-mon wraps over the weekend
        ((0, 1, 2, 3, 4, 5, 6), time(8), time(9)),  # no days: every day
        ((1, 3), time(12), time(13)),
    ]
    assert staff.quiet_hours == (time(22), time(7))
    assert (staff.digest, family.digest) == (None, time(20, 30))


def test_a_resident_without_a_time_zone_uses_the_community_one() -> None:
    (r,) = load_community(home(head="timezone: Europe/Amsterdam")).residents
    assert r.timezone == "Europe/Amsterdam"


def test_help_routine_is_on_by_default_where_a_help_device_exists() -> None:
    spec = load_community(home(devices=with_device("{id: card-1, kind: help}")))
    assert [x.kind for x in spec.residents[0].routines] == ["curtain_open", "help"]
    # an explicit help routine is not doubled
    spec = load_community(
        home(devices=with_device("{id: card-1, kind: help}"), routines="[{kind: help}]")
    )
    assert [x.kind for x in spec.residents[0].routines] == ["help"]
    # no help device, no help routine
    spec = load_community(home())
    assert [x.kind for x in spec.residents[0].routines] == ["curtain_open"]


# -- validation: inputs that crash instead of being reported ----------------------------------


def _rejected_naming(text: str, path: str) -> None:
    found = problems(text)
    assert len(found) == 1 and found[0].startswith(path + ": "), found


def test_a_time_zone_region_without_a_city_is_reported() -> None:
    assert problems(home(head="timezone: Asia")) == [
        'timezone: "Asia" is not a known time zone (like "Asia/Shanghai")'
    ]


@pytest.mark.parametrize("grace", ["100000000000000000000", "99999999999h"])
def test_an_absurd_grace_is_reported(grace: str) -> None:
    _rejected_naming(
        home(routines=routine(f'start: "07:00", end: "09:00", grace: {grace}')),
        "residents[0].routines[0].grace",
    )


def test_an_absurd_escalation_delay_is_reported() -> None:
    _rejected_naming(
        home(tail=step("after: 100000000000000000000, notify: staff")), "escalation[0].after"
    )


def test_an_unquoted_impossible_date_is_reported() -> None:
    text = home(extra="    away: [{from: 2026-02-30, to: 2026-03-02}]\n")
    with pytest.raises(CommunityError) as err:
        load_community(text)
    assert "2026-02-30" in "\n".join(err.value.problems)


def test_an_away_time_instead_of_a_date_is_reported() -> None:
    _rejected_naming(
        home(extra="    away: [{from: 2026-12-01 08:00:00, to: 2026-12-07}]\n"),
        "residents[0].away[0].from",
    )


def test_a_boolean_time_is_not_given_the_base60_hint() -> None:
    assert problems(home(routines=routine('start: "07:00", end: yes'))) == [
        'residents[0].routines[0].end: true is not a time (expected "HH:MM", in quotes)'
    ]


def test_a_nan_light_threshold_is_reported() -> None:
    _rejected_naming(
        home(devices=with_device("{id: light-1, kind: light, light_threshold: .nan}")),
        "residents[0].devices[2].light_threshold",
    )


# -- import: a rejected file changes nothing -------------------------------------------------

BAD_FILES = [
    pytest.param(
        FULL.replace(
            'end: "09:00", grace: 15m}\n      - {kind: curtain_close',
            'end: "25:00", grace: 15m}\n      - {kind: curtain_close',
        ),
        id="bad-time",
    ),
    # every section valid (and different from what is stored), one unknown field
    pytest.param(COMMUNITY + "bogus: 1\n", id="valid-sections-plus-unknown-field"),
    pytest.param(FULL + "  - {after: 1h, notify: everyone\n", id="invalid-yaml"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_rejected_file_changes_nothing(db_url: str, bad: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    feed(
        rt,
        local(DAY, "06:10"),
        ("zigbee2mqtt/door-301", {"contact": False}),
        ("zigbee2mqtt/ghost-9", {"contact": True}),
    )
    before = snapshot(rt)
    assert before["devices"] and before["routines"] and before["events"]
    rt.clock.advance(timedelta(hours=1))
    with pytest.raises(CommunityError):
        rt.import_community(bad)
    assert snapshot(rt) == before
    # the runtime still works: a reading after the rejection is stored for the old community
    feed(rt, local(DAY, "07:20"), ("zigbee2mqtt/door-301", {"contact": True}))
    assert [e.value for e in events(rt, device_id="door-301")] == ["open", "closed"]


def test_a_refused_file_changes_nothing(db_url: str) -> None:
    """A file refused for one bad value (a NaN lux threshold) leaves the database as it was,
    although it also removes a resident."""
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    before = snapshot(rt)
    bad = FULL.replace(
        "{id: light-301, kind: light}", "{id: light-301, kind: light, light_threshold: .nan}"
    )
    bad = bad.replace("  - id: r-302", "  - id: r-303")  # removes a resident before failing
    with pytest.raises(CommunityError):
        rt.import_community(bad)
    assert snapshot(rt) == before


# -- import: idempotent -------------------------------------------------------------------------


def routine_timing(rt: Runtime) -> list[tuple[object, ...]]:
    return [
        (x.id, x.resident_id, x.slot, x.active, x.window_date, x.window_start_at, x.next_due_at)
        for x in routines(rt)
    ]


@pytest.mark.parametrize("text", [FULL, COMMUNITY], ids=["full", "watch-sample"])
def test_importing_the_same_file_twice_changes_nothing(db_url: str, text: str) -> None:
    rt = make_runtime(db_url)
    first = rt.import_community(text)
    rows, timing = counts(rt), routine_timing(rt)
    devices_before, people_before = snapshot(rt)["devices"], snapshot(rt)["people"]
    assert rows["residents"] == 2 and rows["devices"] > 0 and rows["people"] > 0
    assert any(t[-1] is not None for t in timing)
    rt.clock.advance(timedelta(hours=1))  # 06:00: no window has closed yet
    assert rt.import_community(text) == first
    assert counts(rt) == rows
    assert routine_timing(rt) == timing
    after = snapshot(rt)
    assert (after["devices"], after["people"]) == (devices_before, people_before)


def test_import_counts_and_scheduled_windows(db_url: str) -> None:
    rt = make_runtime(db_url)
    assert rt.import_community(FULL) == {"residents": 2, "devices": 6, "routines": 8, "people": 3}
    assert counts(rt) == {
        "residents": 2,
        "devices": 6,
        "routines": 8,
        "away_periods": 1,
        "people": 3,
    }
    due = {(x.resident_id, x.kind): x.next_due_at for x in routines(rt)}
    assert due == {
        ("r-301", "curtain_open"): utc(DAY, "09:15"),
        ("r-301", "curtain_close"): utc(DAY, "22:30"),
        ("r-301", "light_on"): utc(DAY, "21:00"),
        ("r-301", "door"): utc(DAY, "22:00"),
        ("r-301", "inactivity"): utc(DAY, "17:00"),  # 12 h after the import at 05:00
        ("r-301", "help"): None,
        ("r-302", "curtain_open"): utc(DAY, "09:15"),
        ("r-302", "help"): None,
    }
    with rt.sessions() as s:
        (away,) = s.scalars(select(AwayPeriod))
        assert (away.resident_id, away.first_day, away.last_day) == (
            "r-301",
            date(2026, 12, 1),
            date(2026, 12, 7),
        )
        family = s.get(Person, "f-wang")
        assert family is not None
        assert (family.role, family.resident_id, family.consent) == (
            "family",
            "r-301",
            date(2026, 11, 20),
        )


# -- import: a changed file updates in place -----------------------------------------------------

LATER_END = FULL.replace(
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}\n      - {kind: curtain_close',
    '{kind: curtain_open, start: "07:00", end: "10:00", grace: 15m}\n      - {kind: curtain_close',
)
LATER_GRACE = FULL.replace(
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}\n      - {kind: curtain_close',
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 45m}\n      - {kind: curtain_close',
)
assert LATER_END != FULL and LATER_GRACE != FULL


def curtain_open(rt: Runtime, resident: str = "r-301") -> Routine:
    (x,) = routines(rt, resident_id=resident, kind="curtain_open", active=True)
    return x


def test_changing_an_end_time_moves_the_next_window(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    assert curtain_open(rt).next_due_at == utc(DAY, "09:15")
    untouched = curtain_open(rt, "r-302")
    rt.import_community(LATER_END)
    moved = curtain_open(rt)
    assert (moved.start, moved.end, moved.window_date, moved.next_due_at) == (
        "07:00",
        "10:00",
        date(2026, 11, 23),
        utc(DAY, "10:15"),
    )
    # the other resident's identical routine is not touched
    same = curtain_open(rt, "r-302")
    assert (same.id, same.next_due_at) == (untouched.id, untouched.next_due_at)


def test_changing_an_end_time_updates_the_routine_in_place(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    before = curtain_open(rt)
    rt.import_community(LATER_END)
    after = curtain_open(rt)
    assert after.id == before.id
    assert counts(rt)["routines"] == 8


def _settle_the_morning(rt: Runtime) -> None:
    """Curtain opens 07:30; at 09:30 the 07:00-09:00(+15m) window of 2026-11-23 is settled."""
    rt.import_community(FULL)
    feed(rt, local(DAY, "07:30"), ("zigbee2mqtt/curtain-301", {"position": 100}))
    rt.clock.set(local(DAY, "09:30"))
    rt.engine.settle_due()
    with rt.sessions() as s:
        settled = s.execute(
            select(Settlement.window_date, Settlement.outcome).where(
                Settlement.kind == "curtain_open", Settlement.resident_id == "r-301"
            )
        ).all()
    assert settled == [(date(2026, 11, 23), "satisfied")]


def _curtain_open_settlements(rt: Runtime) -> list[date]:
    with rt.sessions() as s:
        return list(
            s.scalars(
                select(Settlement.window_date)
                .where(Settlement.kind == "curtain_open", Settlement.resident_id == "r-301")
                .order_by(Settlement.id)
            )
        )


def test_a_settled_day_is_not_reopened_when_the_grace_grows(db_url: str) -> None:
    rt = make_runtime(db_url)
    _settle_the_morning(rt)
    before = curtain_open(rt)
    rt.import_community(LATER_GRACE)  # 09:45 is still ahead, but today is settled
    after = curtain_open(rt)
    assert after.id == before.id
    assert (after.window_date, after.next_due_at) == (
        date(2026, 11, 24),
        utc("2026-11-24", "09:45"),
    )
    rt.clock.set(local(DAY, "10:30"))
    rt.engine.settle_due()
    assert _curtain_open_settlements(rt) == [date(2026, 11, 23)]


def test_a_settled_day_is_not_reopened_when_the_end_moves_later(db_url: str) -> None:
    rt = make_runtime(db_url)
    _settle_the_morning(rt)
    rt.import_community(LATER_END)
    after = curtain_open(rt)
    assert (after.window_date, after.next_due_at) == (
        date(2026, 11, 24),
        utc("2026-11-24", "10:15"),
    )
    rt.clock.set(local(DAY, "10:30"))
    rt.engine.settle_due()
    assert _curtain_open_settlements(rt) == [date(2026, 11, 23)]


def test_removing_a_resident_deactivates_it_and_its_routines(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    kept = routine_timing(rt)
    without = FULL[: FULL.index("  - id: r-302")] + FULL[FULL.index("people:") :]
    assert rt.import_community(without)["residents"] == 1
    with rt.sessions() as s:
        assert {r.id: r.active for r in s.scalars(select(Resident))} == {
            "r-301": True,
            "r-302": False,
        }
    gone = routines(rt, resident_id="r-302")
    assert [(x.kind, x.active, x.next_due_at) for x in gone] == [
        ("curtain_open", False, None),
        ("help", False, None),
    ]
    assert [t for t in routine_timing(rt) if t[1] == "r-301"] == [
        t for t in kept if t[1] == "r-301"
    ]
    # back in the file: active again, with a window to watch
    rt.import_community(FULL)
    assert curtain_open(rt, "r-302").next_due_at == utc(DAY, "09:15")
    with rt.sessions() as s:
        resident = s.get(Resident, "r-302")
        assert resident is not None and resident.active


def test_removing_a_routine_deactivates_it(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    rt.import_community(FULL.replace('      - {kind: door, start: "06:00", end: "22:00"}\n', ""))
    (door,) = routines(rt, resident_id="r-301", kind="door")
    assert (door.active, door.next_due_at) == (False, None)


def test_removing_a_device_deletes_it(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    without = FULL.replace("      - {id: light-301, kind: light}\n", "").replace(
        '      - {kind: light_on, start: "17:30", end: "21:00"}\n', ""
    )
    assert rt.import_community(without)["devices"] == 5
    assert device(rt, "light-301") is None
    assert device(rt, "curtain-301") is not None
    (light_on,) = routines(rt, kind="light_on")
    assert (light_on.active, light_on.next_due_at) == (False, None)
    # the ingestor forgot it too: its readings now come from an unknown device
    feed(rt, local(DAY, "18:00"), ("zigbee2mqtt/light-301", {"state": "ON"}))
    assert events(rt, device_id="light-301") == []
    with rt.sessions() as s:
        assert s.get(UnknownDevice, "light-301") is not None


TWO_HOMES = """
timezone: Asia/Shanghai
residents:
  - id: r-a
    name: A
    building: "1"
    devices: [{{id: door-a, kind: door}}{a}]
  - id: r-b
    name: B
    building: "1"
    devices: [{{id: door-b, kind: door}}{b}]
"""
MOTION_A = ", {id: motion-a, kind: motion}"
MOTION_B = ", {id: motion-b, kind: motion}"
MOVES = [
    pytest.param(
        "motion-b",
        TWO_HOMES.format(a="", b=MOTION_B),
        TWO_HOMES.format(a=MOTION_B, b=""),
        "r-a",
        id="to-a-resident-listed-earlier",
    ),
    pytest.param(
        "motion-a",
        TWO_HOMES.format(a=MOTION_A, b=""),
        TWO_HOMES.format(a="", b=MOTION_A),
        "r-b",
        id="to-a-resident-listed-later",
    ),
]


@pytest.mark.parametrize(("device_id", "before", "after", "owner"), MOVES)
def test_moving_a_device_moves_it(
    db_url: str, device_id: str, before: str, after: str, owner: str
) -> None:
    rt = make_runtime(db_url)
    rt.import_community(before)
    feed(rt, local(DAY, "06:00"), (f"zigbee2mqtt/{device_id}", {"occupancy": True}))
    rt.import_community(after)
    moved = device(rt, device_id)
    assert moved is not None and (moved.resident_id, moved.kind) == (owner, "motion")
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 3
    feed(rt, local(DAY, "06:05"), (f"zigbee2mqtt/{device_id}", {"occupancy": False}))
    assert [(e.resident_id, e.value) for e in events(rt, device_id=device_id)][-1] == (
        owner,
        "idle",
    )


@pytest.mark.parametrize(
    ("device_id", "before", "after", "owner"),
    [
        MOVES[0],
        pytest.param(*MOVES[1].values, id=MOVES[1].id),
    ],
)
def test_a_moved_device_keeps_what_it_reported(
    db_url: str, device_id: str, before: str, after: str, owner: str
) -> None:
    rt = make_runtime(db_url)
    rt.import_community(before)
    created = device(rt, device_id)
    assert created is not None
    feed(rt, local(DAY, "06:00"), (f"zigbee2mqtt/{device_id}", {"occupancy": True, "battery": 80}))
    rt.clock.set(local(DAY, "06:30"))
    rt.import_community(after)
    moved = device(rt, device_id)
    assert moved is not None and moved.resident_id == owner
    assert (moved.state, moved.last_seen, moved.battery, moved.created_at) == (
        "active",
        utc(DAY, "06:00"),
        80.0,
        created.created_at,
    )


def test_an_import_resolves_the_device_alerts_of_devices_it_moved_or_removed(
    db_url: str,
) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    offline = [
        (f"zigbee2mqtt/{d}/availability", {"state": "offline"})
        for d in ("door-301", "light-301", "curtain-302")
    ]
    feed(rt, local(DAY, "06:00"), *offline)
    rt.engine.check_devices()
    # door-301 moves to r-302, light-301 leaves the file, curtain-302 stays where it is.
    door, light = "      - {id: door-301, kind: door}\n", "      - {id: light-301, kind: light}\n"
    card = "      - {id: card-302, kind: help}\n"
    after = FULL.replace(door, "").replace(light, "").replace(card, card + door)
    after = after.replace('      - {kind: door, start: "06:00", end: "22:00"}\n', "")
    after = after.replace('      - {kind: light_on, start: "17:30", end: "21:00"}\n', "")
    rt.clock.set(local(DAY, "06:30"))
    rt.import_community(after)
    with rt.sessions() as s:
        found = {
            (a.resident_id, a.cause): (a.status, a.outcome, a.resolved_by)
            for a in s.scalars(select(Alert))
        }
    assert found == {
        ("r-301", "device_offline:door-301"): ("resolved", "device_moved", "curtainwatch"),
        ("r-301", "device_offline:light-301"): ("resolved", "device_removed", "curtainwatch"),
        ("r-302", "device_offline:curtain-302"): ("open", None, None),
    }
    # The moved door, still offline, is now r-302's to worry about.
    rt.engine.check_devices()
    with rt.sessions() as s:
        assert (
            s.scalar(
                select(Alert.status).where(
                    Alert.resident_id == "r-302", Alert.cause == "device_offline:door-301"
                )
            )
            == "open"
        )


def test_an_unknown_device_is_forgotten_once_assigned(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    feed(
        rt,
        local(DAY, "06:00"),
        ("zigbee2mqtt/door-302", {"contact": True}),
        ("zigbee2mqtt/ghost-1", {"contact": True}),
    )
    with rt.sessions() as s:
        assert sorted(s.scalars(select(UnknownDevice.id))) == ["door-302", "ghost-1"]
    assigned = FULL.replace(
        "      - {id: card-302, kind: help}\n",
        "      - {id: card-302, kind: help}\n      - {id: door-302, kind: door}\n",
    )
    rt.import_community(assigned)
    with rt.sessions() as s:
        assert list(s.scalars(select(UnknownDevice.id))) == ["ghost-1"]
    feed(rt, local(DAY, "06:05"), ("zigbee2mqtt/door-302", {"contact": False}))
    assert [(e.resident_id, e.kind, e.value) for e in events(rt, device_id="door-302")] == [
        ("r-302", "door", "open")
    ]
    with rt.sessions() as s:
        assert list(s.scalars(select(UnknownDevice.id))) == ["ghost-1"]


def test_help_routine_is_stored_for_residents_with_a_help_device(db_url: str) -> None:
    rt = make_runtime(db_url)
    rt.import_community(FULL)
    helps = routines(rt, kind="help")
    assert [
        (x.resident_id, x.active, x.next_due_at, x.match_kind, x.match_value) for x in helps
    ] == [("r-301", True, None, "help", "help"), ("r-302", True, None, "help", "help")]
    # take r-302's card away: no help device, so its help routine goes
    rt.import_community(FULL.replace("      - {id: card-302, kind: help}\n", ""))
    assert [(x.resident_id, x.active) for x in routines(rt, kind="help")] == [
        ("r-301", True),
        ("r-302", False),
    ]


# -- the shared community files -------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("home_name", ["kasteren-a", "kasteren-b", "kasteren-c"])
def test_shared_community_files_load_and_import(
    shared_data: Path, db_url: str, home_name: str
) -> None:
    text = (shared_data / home_name / "community.yaml").read_text(encoding="utf-8")
    spec = load_community(text)
    (resident,) = spec.residents
    assert resident.id == home_name and resident.timezone == "Europe/Amsterdam"
    rt = make_runtime(db_url, datetime(2008, 2, 25, 12, 0, tzinfo=UTC))
    assert rt.import_community(text) == {
        "residents": 1,
        "devices": len(resident.devices),
        "routines": 2,
        "people": 0,
    }
    with rt.sessions() as s:
        stored = sorted(s.scalars(select(Device.id).where(Device.resident_id == home_name)))
    assert stored == sorted(d.id for d in resident.devices)
    assert sorted(x.kind for x in routines(rt, active=True)) == ["activity", "inactivity"]
    assert all(x.next_due_at is not None for x in routines(rt))
    assert rt.import_community(text)["devices"] == len(resident.devices)


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_import_prints_counts(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "community.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "imported 2 residents, 6 devices, 8 routines, 3 people\n"
    rt = make_runtime(db_url)
    assert counts(rt)["residents"] == 2


def test_cli_import_of_a_bad_file_prints_every_problem(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "community.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 0
    capsys.readouterr()
    bad = FULL.replace(
        'end: "09:00", grace: 15m}\npeople', 'end: "25:00", grace: 15m}\npeople'
    ).replace('role: volunteer, buildings: ["3"]', "role: volunteer")
    assert bad.count("25:00") == 1
    path.write_text(bad, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "community file rejected:",
        '  residents[1].routines[0].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)',
        "  people[0].buildings: a volunteer needs the buildings they cover",
    ]
    # nothing changed
    rt = make_runtime(db_url)
    assert curtain_open(rt).end == "09:00"


def test_cli_import_of_a_missing_file_fails_cleanly(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", db_url, "import", str(tmp_path / "nope.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("curtainwatch import: ") and "nope.yaml" in err
