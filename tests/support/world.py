"""The world the tests share: the day they happen on and local times on it (`at`), the
community (one builder, `community`, with keyword overrides for what a test varies), the
users who sign in, and `World`: all of that as a Runtime on a fresh database at a simulated
clock, which is what the `rt` fixture (tests/conftest.py) builds. Then `feed` sends a
reading through the real ingestor and `advance` moves the clock and runs the scheduler's
jobs.

    community()                                      # the fixture community, as YAML
    community(residents=[resident(routines=[CURTAIN_OPEN])], notify=rx.url)
    rt = World(start="05:30").runtime(db_url)        # on it, the clock at 05:30 on DAY
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
    advance(rt, "09:15")                             # settle, check devices, notify
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml

from curtainwatch.runtime import Runtime
from monitor.admin.users import create_user, hash_password
from monitor.clock import SimulatedClock
from monitor.config import Settings
from sensors.ingest import Message

if TYPE_CHECKING:
    from support.mqtt import MosquittoBroker

# -- when --------------------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-23"  # a Monday
NEXT_DAY = "2026-11-24"


def at(hhmm: str, day: str = DAY, zone: ZoneInfo = SHANGHAI) -> datetime:
    """The wall-clock time `hhmm` (HH:MM or HH:MM:SS) on `day` in `zone`:
    at("07:40"), at("09:15", "2026-11-28")."""
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=zone)


# -- the community -----------------------------------------------------------------------

CURTAIN_OPEN = {"kind": "curtain_open", "start": "07:00", "end": "09:00", "grace": "15m"}
CURTAIN_CLOSE = {"kind": "curtain_close", "start": "18:00", "end": "22:30"}
LIGHT_ON = {"kind": "light_on", "start": "17:30", "end": "21:00"}
DOOR = {"kind": "door", "start": "06:00", "end": "22:00"}
INACTIVITY = {"kind": "inactivity", "hours": 12}

# A device kind -> the start of its id: a help card of r-301 is card-301.
DEVICE_NAMES = {"curtain": "curtain", "door": "door", "light": "light", "help": "card"}

RESIDENTS: dict[str, dict[str, Any]] = {
    "r-301": {
        "name": "Wang Shulan",
        "building": "3",
        "unit": "301",
        "devices": ("curtain", "door", "light", "help"),
        "routines": (CURTAIN_OPEN, CURTAIN_CLOSE, LIGHT_ON, DOOR, INACTIVITY),
    },
    "r-302": {
        "name": "Zhao Guiying",
        "building": "3",
        "unit": "302",
        "devices": ("curtain", "help"),
        "routines": (CURTAIN_OPEN,),
    },
    "r-501": {
        "name": "Sun Lihua",
        "building": "5",
        "unit": "501",
        "devices": ("curtain", "door", "help"),
        "routines": (CURTAIN_OPEN, DOOR),
        "away": ({"from": "2026-12-20", "to": "2026-12-27"},),
    },
}
# r-301's contact block, in the fixture community only.
CONTACT_301 = {
    "phone": "138 0000 0301",
    "contact": "Wang Jun (son), 139 0000 1111",
    "notes": "Hard of hearing: knock loudly.",
}

PEOPLE: dict[str, dict[str, Any]] = {
    "v-li": {"name": "Li Ming", "role": "volunteer", "buildings": ["3"], "language": "en"},
    "v-zhou": {"name": "Zhou Lei", "role": "volunteer", "buildings": ["5"], "language": "en"},
    "s-chen": {"name": "Chen Fang", "role": "staff", "language": "en"},
    "f-wang": {
        "name": "Wang Jun",
        "role": "family",
        "resident": "r-301",
        "consent": "2026-11-20",
        "language": "en",
    },
    "f-sun": {
        "name": "Sun Qiang",
        "role": "family",
        "resident": "r-501",
        "consent": "2026-11-20",
        "language": "en",
    },
}

LADDER = (
    {"after": "0m", "notify": "volunteers"},
    {"after": "15m", "notify": "staff"},
    {"after": "30m", "notify": "family"},
)

# The order fields are written in, as in the community files people write.
_RESIDENT_FIELDS = ("id", "name", "building", "unit", *CONTACT_301, "devices", "routines")


def resident(rid: str = "r-301", *, tag: str | None = None, **fields: Any) -> dict[str, Any]:
    """Resident `rid` as the fixture community has it (r-301 Wang Shulan with a curtain, a
    door, a light and a help card and the usual routines; r-302 Zhao Guiying; r-501 Sun
    Lihua, away at Christmas), or a new one, with `fields` changed; a field set to None is
    left out. `devices` may name kinds ("curtain", "help"): each becomes
    ``{id: curtain-<tag>, kind: curtain}`` (a help card: ``card-<tag>``), where the tag is
    the id without "r-" unless `tag` says otherwise."""
    merged = {"id": rid, **RESIDENTS.get(rid, {}), **fields}
    spec = {k: merged[k] for k in _RESIDENT_FIELDS if merged.get(k) is not None}
    spec |= {k: v for k, v in merged.items() if k not in spec and v is not None}
    tag = rid.removeprefix("r-") if tag is None else tag
    if "devices" in spec:
        spec["devices"] = [
            _Flow(d) if isinstance(d, Mapping) else _Flow(id=f"{DEVICE_NAMES[d]}-{tag}", kind=d)
            for d in spec["devices"]
        ]
    if "routines" in spec:
        spec["routines"] = [_Flow(r) for r in spec["routines"]]
    if "away" in spec:
        spec["away"] = _FlowList(_Flow(a) for a in spec["away"])
    return spec


def person(pid: str, **fields: Any) -> dict[str, Any]:
    """Person `pid` as the fixture community has them (v-li, v-zhou, s-chen, f-wang, f-sun;
    see PEOPLE) or a new one, with `fields` changed; a field set to None is left out. Without
    `notify`, `community` gives them an address of its `notify`."""
    merged = {"id": pid, **PEOPLE.get(pid, {}), **fields}
    return {k: v for k, v in merged.items() if v is not None}


def fixture_residents() -> list[dict[str, Any]]:
    """The fixture community's residents: r-301 (with her contact block), r-302, r-501."""
    return [resident("r-301", **CONTACT_301), resident("r-302"), resident("r-501")]


def nowhere(person_id: str) -> str:
    """An address nothing answers (the discard port): sending to it fails, quietly."""
    return f"json://127.0.0.1:9/{person_id}"


def community(
    *,
    residents: Iterable[Mapping[str, Any]] | None = None,
    people: Iterable[Mapping[str, Any]] | None = None,
    escalation: Iterable[Mapping[str, Any]] | None = LADDER,
    timezone: str = "Asia/Shanghai",
    notify: Callable[[str], str] = nowhere,
) -> str:
    """The community file (YAML) the tests import. As it is: three residents in buildings 3
    and 5 (r-301 with her contact block, r-302, r-501), the five people of PEOPLE, the
    three-step LADDER, in Shanghai. `residents` and `people` replace theirs (see `resident`
    and `person`, and `fixture_residents` to add some; an empty list: none); `escalation`
    None or empty leaves the ladder out; `notify` gives each person without addresses
    theirs (e.g. a Receiver's `url`).

    It is written the way people write the file (flow mappings, "HH:MM" in double quotes),
    so a test may still edit it as text: ``COMMUNITY.replace('end: "22:30"', ...)``."""
    if residents is None:
        residents = fixture_residents()
    if people is None:
        people = [person(pid) for pid in PEOPLE]
    spec: dict[str, Any] = {"timezone": timezone, "residents": [dict(r) for r in residents]}
    if everyone := [_Flow({**p, "notify": p.get("notify") or [notify(p["id"])]}) for p in people]:
        spec["people"] = everyone
    if steps := [_Flow(step) for step in escalation or ()]:
        spec["escalation"] = steps
    return yaml.dump(spec, Dumper=_Writer, sort_keys=False, allow_unicode=True, width=10_000)


class _Flow(dict[str, Any]):
    """A mapping written on one line: ``{id: curtain-301, kind: curtain}``."""


class _FlowList(list[Any]):
    """A list written on one line: ``[{from: "2026-12-20", to: "2026-12-27"}]``."""


class _Writer(yaml.SafeDumper):
    """YAML as the community files are written by hand: lists indented under their key,
    strings quoted (double quotes) only where they must be or hold punctuation."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    plain = (
        value.strip() == value != ""
        and dumper.resolve(yaml.ScalarNode, value, (True, False)) == "tag:yaml.org,2002:str"
        and not any(c in value for c in ":#,[]{}&*!|>'\"%@`")
    )
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else '"')


_Writer.add_representer(str, _string)
_Writer.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)
_Writer.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)
_Writer.add_representer(tuple, lambda d, v: d.represent_list(list(v)))

COMMUNITY = community()
"""The fixture community: r-301, r-302 (building 3), r-501 (building 5), one person per
role and a second volunteer and family member, the three-step ladder."""

BUILDING_3 = community(
    residents=[
        resident("r-301", routines=[CURTAIN_OPEN, CURTAIN_CLOSE, LIGHT_ON, INACTIVITY]),
        resident("r-302"),
    ],
    people=[person("v-li", language=None, notify=["ntfy://ntfy.example.org/li-ming"])],
    escalation=LADDER[:1],
)
"""Building 3 alone: r-301 (no door routine) and r-302, and their volunteer; the
community of the tests that run curtainwatch whole, over a broker."""


# -- who signs in ------------------------------------------------------------------------

PASSWORD = "correct horse battery"

# username -> (role, person): one user per role, and a second volunteer and family member
# who must not see the first ones' residents (the authorization matrix uses these).
USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "staff": ("staff", "s-chen"),
    "vol3": ("volunteer", "v-li"),
    "vol5": ("volunteer", "v-zhou"),
    "fam301": ("family", "f-wang"),
    "fam501": ("family", "f-sun"),
}

_HASHED: list[str] = []


def _hashed_password() -> str:
    # Hashing costs 0.2 s: once per session, not once per user and test.
    if not _HASHED:
        _HASHED.append(hash_password(PASSWORD))
    return _HASHED[0]


def make_users(rt: Runtime) -> None:
    """The USERS, with PASSWORD, reading English."""
    with rt.sessions.begin() as s:
        for username, (role, person_id) in USERS.items():
            create_user(
                s,
                username,
                PASSWORD,
                role,
                rt.clock.now(),
                person_id=person_id,
                language="en",
                hashed=_hashed_password(),
            )


# -- a runtime on it ---------------------------------------------------------------------

Reading = tuple[str, object]  # (topic, payload), see `feed` for the payload


@dataclass(frozen=True)
class World:
    """What the `rt` fixture builds; a test module overrides the `world` fixture to change
    it, a test wanting a world of its own calls ``World(...).runtime(db_url)``."""

    community: str | None = COMMUNITY  # None: nothing imported (the test imports its own)
    day: str = DAY
    start: str | datetime = "06:00"  # the simulated clock's first time (HH:MM on `day`)
    users: bool = True  # make the USERS
    readings: Sequence[Reading] = ()  # arrive at `start`, in one batch
    settings: Mapping[str, Any] = field(default_factory=dict)  # for Settings
    language: str | None = "en"  # what the `app` fixture's browsers ask for
    on_raised: Callable[..., None] | None = None  # told of each alert raised (Runtime's)

    def runtime(self, db_url: str) -> Runtime:
        """A Runtime (not started: no broker, no scheduler) on `db_url` with the community
        imported, then the users made and the readings stored."""
        clock = SimulatedClock(_when(self.start, self.day))
        rt = Runtime(Settings(database_url=db_url, **self.settings), clock, self.on_raised)
        if self.community is not None:
            rt.import_community(self.community)
        if self.users:
            make_users(rt)
        if self.readings:
            when = clock.now().astimezone(UTC)
            rt.ingestor.process([Message(t, _body(p), when) for t, p in self.readings])
        return rt


def on_broker(broker: MosquittoBroker, client_id: str, **settings: Any) -> dict[str, Any]:
    """`World.settings` for a runtime that ingests from the test `broker` as `client_id`."""
    return {
        "mqtt_host": broker.host,
        "mqtt_port": broker.port,
        "mqtt_client_id": client_id,
        **settings,
    }


def _body(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    return payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()


def _when(when: str | datetime, day: str) -> datetime:
    return when if isinstance(when, datetime) else at(when, day)


def feed(rt: Runtime, topic: str, payload: object, when: str | datetime, day: str = DAY) -> None:
    """One MQTT message through the real ingestor (adapters, events, help alerts), as if it
    arrived at `when` (HH:MM local time on `day`, or a datetime); moves the simulated clock
    there first. `payload`: bytes or str as they are, anything else as JSON."""
    moment = _when(when, day)
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(moment)
    rt.ingestor.process([Message(topic, _body(payload), moment.astimezone(UTC))])


JOBS = ("settle", "devices", "notify")  # the scheduler's, in its order


def advance(
    rt: Runtime, when: str | datetime, day: str = DAY, *, jobs: Collection[str] = JOBS
) -> None:
    """Move the simulated clock to `when` (HH:MM local time on `day`, or a datetime) and run
    what the scheduler would there: settle the due windows, check the devices, notify
    (escalate, queue digests, send). `jobs` names fewer: ("settle", "notify") leaves the
    devices unchecked, () only moves the clock."""
    assert set(jobs) <= set(JOBS), jobs
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(_when(when, day))
    if "settle" in jobs:
        rt.engine.settle_due()
    if "devices" in jobs:
        rt.engine.check_devices()
    if "notify" in jobs:
        rt.notify()
