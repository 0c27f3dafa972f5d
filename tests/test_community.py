"""The community file (docs/contracts.md, "The community file"; monitor/importing/community.py,
load.py, validate.py): every validation rule with the exact message a staff member reads,
and what an accepted file means. What an import then writes is tests/test_apply.py."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from support.community_file import FULL
from support.world import BUILDING_3

from monitor.importing.community import CommunityError, CommunitySpec
from monitor.importing.load import load_community

DEVICE_KINDS = "curtain, door, light, help, motion, contact, power, water"
ROUTINE_KINDS = "curtain_open, curtain_close, light_on, door, activity, inactivity, help"
RESIDENT_FIELDS = (
    "id, name, building, unit, timezone, devices, routines, away, phone, contact, notes"
)
PERSON_FIELDS = (
    "id, name, role, language, buildings, resident, consent, notify, rota, quiet_hours, digest"
)


# -- helpers ---------------------------------------------------------------------------------


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


# -- validation: one case per rule, exact wording ---------------------------------------------


def test_the_template_files_are_valid() -> None:
    """The files the cases below start from are themselves accepted."""
    spec = load_community(home())
    assert [r.id for r in spec.residents] == ["r-1"]
    assert isinstance(load_community(FULL), CommunitySpec)
    assert isinstance(load_community(BUILDING_3), CommunitySpec)


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
