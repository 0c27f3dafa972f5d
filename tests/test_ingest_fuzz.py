"""Property tests for the ingestor (sensors/ingest.py) on a real SQLite database, no broker:
streams that mix valid readings of registered devices with garbage, unknown devices and
topics curtainwatch ignores, cut into batches at random. Whatever arrives, `process` does not
raise; every change of state is stored once, in order; every unusable payload on a known
topic family is a dead letter naming its topic; every message is counted.

One Runtime per test; every example registers a resident of its own (device ids carry the
example number), so examples do not see each other's device states."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import DeadLetter, Event, UnknownDevice
from sensors.ingest import Message, storable

# Modest example counts: the whole file must stay under 30 s. Each example of the stream
# tests imports a community and runs several transactions; the arbitrary-message test is cheap.
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
HUGE = b'{"contact": true, "pad": "' + b"x" * (64 * 1024) + b'"}'  # valid JSON, too large


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One generated message and what it should do.

    kind: "valid" (a known device; `states` are the states it implies, in order),
    "unknown" (a valid reading from a device no resident has), "garbage" (a dead letter),
    "ignored" (a topic curtainwatch does not handle)."""

    topic: str
    payload: bytes
    kind: str
    device: str | None = None
    states: tuple[str, ...] = ()
    ts: datetime | None = None


Gen = Callable[[int], st.SearchStrategy[Sent]]  # example number -> strategy


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def make_runtime(db_url: str) -> Runtime:
    return Runtime(Settings(database_url=db_url), SimulatedClock(START))


def community(numbers: range) -> str:
    """Residents r-<n>, each with door-<n>, curtain-<n>, light-<n> and help card card-<n>."""
    return "timezone: Asia/Shanghai\nresidents:\n" + "".join(
        f"""
  - id: r-{n}
    name: Fuzz {n}
    building: "9"
    devices:
      - {{id: door-{n}, kind: door}}
      - {{id: curtain-{n}, kind: curtain}}
      - {{id: light-{n}, kind: light}}
      - {{id: card-{n}, kind: help}}
    routines:
      - {{kind: curtain_open, start: "07:00", end: "09:00"}}
      - {{kind: inactivity, hours: 12}}
"""
        for n in numbers
    )


def register(rt: Runtime, n: int) -> None:
    rt.import_community(community(range(n, n + 1)))


class Homes:
    """A fresh resident for every example: `next()` gives a number never used before,
    registering residents in blocks (one import per 64 examples, not one per example)."""

    BLOCK = 64

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.registered = 0
        self.counter = itertools.count()

    def next(self) -> int:
        n = next(self.counter)
        if n >= self.registered:
            self.registered += self.BLOCK
            self.rt.import_community(community(range(self.registered)))
        return n


# -- valid readings of registered devices ------------------------------------------------------

extras = st.fixed_dictionaries(
    {}, optional={"battery": st.integers(0, 100), "linkquality": st.integers(0, 255)}
)


def _z2m(
    topic: str, device: str, field: str, value: object, state: str | None, extra: dict[str, Any]
) -> Sent:
    return Sent(topic, _json({field: value, **extra}), "valid", device, (state,) if state else ())


def door_contact(n: int) -> st.SearchStrategy[Sent]:
    return st.builds(
        lambda b, x: _z2m(
            f"zigbee2mqtt/door-{n}", f"door-{n}", "contact", b, "closed" if b else "open", x
        ),
        st.booleans(),
        extras,
    )


DOOR_STATES = {"OPEN": "open", "CLOSE": "closed", "ON": "open", "OFF": "closed", "STOP": None}


def door_state(n: int) -> st.SearchStrategy[Sent]:
    return st.builds(
        lambda s, low, x: _z2m(
            f"zigbee2mqtt/door-{n}",
            f"door-{n}",
            "state",
            s.lower() if low else s,
            DOOR_STATES[s],
            x,
        ),
        st.sampled_from(sorted(DOOR_STATES)),
        st.booleans(),
        extras,
    )


def curtain_position(n: int) -> st.SearchStrategy[Sent]:
    pos = st.integers(0, 100) | st.floats(0, 100, allow_nan=False)
    return st.builds(
        lambda p, x: _z2m(
            f"zigbee2mqtt/curtain-{n}",
            f"curtain-{n}",
            "position",
            p,
            "open" if p >= 20 else "closed",
            x,
        ),
        pos,
        extras,
    )


def curtain_state(n: int) -> st.SearchStrategy[Sent]:
    states = {"OPEN": "open", "CLOSE": "closed", "STOP": None}
    return st.builds(
        lambda s: _z2m(f"zigbee2mqtt/curtain-{n}", f"curtain-{n}", "state", s, states[s], {}),
        st.sampled_from(sorted(states)),
    )


def light_reading(n: int) -> st.SearchStrategy[Sent]:
    by_state = st.builds(
        lambda s: _z2m(f"zigbee2mqtt/light-{n}", f"light-{n}", "state", s, s.lower(), {}),
        st.sampled_from(["ON", "OFF"]),
    )
    lux = st.floats(0, 10_000, allow_nan=False) | st.integers(0, 100)
    by_lux = st.builds(
        lambda v: _z2m(
            f"zigbee2mqtt/light-{n}", f"light-{n}", "illuminance", v, "on" if v >= 30 else "off", {}
        ),
        lux,
    )  # default threshold
    return by_state | by_lux


def card_reading(n: int) -> st.SearchStrategy[Sent]:
    contact = st.builds(
        lambda b, x: _z2m(
            f"zigbee2mqtt/card-{n}", f"card-{n}", "contact", b, "ok" if b else "help", x
        ),
        st.booleans(),
        extras,
    )
    action = st.builds(
        lambda a: _z2m(
            f"zigbee2mqtt/card-{n}", f"card-{n}", "action", a, "help" if a else None, {}
        ),
        st.sampled_from(["single", "double", "hold", ""]),
    )
    return contact | action


def heartbeat(n: int) -> st.SearchStrategy[Sent]:
    """Noise that only says the device is alive: no event."""

    def make(dev: str, body: dict[str, Any]) -> Sent:
        return Sent(f"zigbee2mqtt/{dev}", _json(body), "valid", dev)

    devices = st.sampled_from([f"door-{n}", f"curtain-{n}", f"light-{n}", f"card-{n}"])
    body = st.fixed_dictionaries(
        {"linkquality": st.integers(0, 255)},
        optional={"battery": st.integers(0, 100), "contact": st.none(), "voltage": st.integers()},
    )
    return st.builds(make, devices, body)


def availability(n: int) -> st.SearchStrategy[Sent]:
    devices = st.sampled_from([f"door-{n}", f"curtain-{n}", f"light-{n}", f"card-{n}"])
    payloads = st.sampled_from(
        [b"online", b"offline", b"Online ", b'{"state":"online"}', b'{"state": "offline"}']
    )
    return st.builds(
        lambda d, p: Sent(f"zigbee2mqtt/{d}/availability", p, "valid", d), devices, payloads
    )


EVENT_VALUES = {
    "door": {"open": "open", "closed": "closed", "close": "closed", " OPEN ": "open"},
    "curtain": {"open": "open", "closed": "closed", "Close": "closed"},
    "light": {"on": "on", "off": "off", "ON": "on"},
    "help": {"help": "help", "ok": "ok", "HELP": "help"},
}
DEVICE_OF = {"door": "door", "curtain": "curtain", "light": "light", "help": "card"}


def own_event(n: int) -> st.SearchStrategy[Sent]:
    """curtainwatch/<device>/event, with or without its own time."""

    def make(kind: str, raw: str, seconds: int | None, offset: str) -> Sent:
        dev = f"{DEVICE_OF[kind]}-{n}"
        body: dict[str, Any] = {"kind": kind, "value": raw}
        ts = None
        if seconds is not None:
            tz = datetime.strptime(offset, "%z").tzinfo
            ts = (START + timedelta(seconds=seconds)).astimezone(tz)
            body["ts"] = ts.isoformat()
        return Sent(
            f"curtainwatch/{dev}/event", _json(body), "valid", dev, (EVENT_VALUES[kind][raw],), ts
        )

    kind = st.sampled_from(sorted(EVENT_VALUES))
    return kind.flatmap(
        lambda k: st.builds(
            make,
            st.just(k),
            st.sampled_from(sorted(EVENT_VALUES[k])),
            # a payload time may lie days before its arrival, at most an hour after
            st.none() | st.integers(-3 * 86400, 30 * 60),
            st.sampled_from(["+0800", "+0000", "-0530"]),
        )
    )


# -- unknown devices (valid readings from a device no resident has) --------------------------

# Device names with odd characters: spaces, unicode, MQTT wildcards, NUL (stored escaped, see
# sensors.ingest.storable); no "/" (that would change the topic's structure) and no lone
# surrogates (not UTF-8, cannot come over MQTT).
odd_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), max_size=12
)


def unknown_device(n: int) -> st.SearchStrategy[Sent]:
    def make(name: str, family: int, b: bool) -> Sent:
        dev = f"ghost-{n}-{name}"
        topic, payload = [
            (f"zigbee2mqtt/{dev}", _json({"contact": b})),
            (f"zigbee2mqtt/{dev}", _json({"linkquality": 7})),
            (f"zigbee2mqtt/{dev}/availability", b"online" if b else b'{"state": "offline"}'),
            (f"tele/{dev}/STATE", _json({"POWER": "ON" if b else "OFF"})),
            (f"stat/{dev}/POWER", b"ON" if b else b"OFF"),
            (f"tele/{dev}/LWT", b"Online" if b else b"Offline"),
            (f"shellies/{dev}/relay/0", b"on" if b else b"overpower"),
            (f"{dev}/status/switch:0", _json({"output": b})),
            (f"curtainwatch/{dev}/event", _json({"kind": "door", "value": "open"})),
        ][family]
        return Sent(topic, payload, "unknown", dev)

    return st.builds(make, odd_names, st.integers(0, 8), st.booleans())


# -- garbage on known topic families ------------------------------------------------------------

BAD_Z2M = [
    {"contact": "yes"},
    {"contact": 1},
    {"position": 250},
    {"position": -1},
    {"position": "50"},
    {"position": True},
    {"state": "MAYBE"},
    {"state": 1},
    {"battery": 101},
    {"illuminance": -5},
    {"occupancy": "true"},
    {"action": 5},
    [1, 2],
    "str",
    None,
    42,
    True,
    {"contact": [True]},
]
BAD_RAW = [
    b"",
    b"{",
    b"not json",
    b"{'contact': true}",
    b'{"position": 1e400}',
    b"\xff\xfe",
    b'{"contact": true}\x00',
    b"[" * 100_000,
    HUGE,
]


def garbage(n: int) -> st.SearchStrategy[Sent]:
    known = [f"door-{n}", f"curtain-{n}", f"light-{n}", f"card-{n}"]
    device = st.sampled_from(known) | st.builds(lambda s: f"ghost-{n}-{s}", odd_names)

    def z2m(dev: str, payload: bytes) -> Sent:
        return Sent(f"zigbee2mqtt/{dev}", payload, "garbage", dev)

    z2m_bad = st.builds(
        z2m,
        device,
        st.sampled_from([_json(v) for v in BAD_Z2M] + BAD_RAW)
        | st.binary(max_size=40).map(lambda b: b"\xff" + b)  # never UTF-8
        | st.text(max_size=40).map(lambda t: ("\x00" + t).encode()),
    )  # not JSON
    other_bad = st.builds(
        lambda dev, tp: Sent(tp[0].format(dev), tp[1], "garbage", dev),
        device,
        st.sampled_from(
            [
                ("zigbee2mqtt/{}/availability", b'{"state": "sleeping"}'),
                ("zigbee2mqtt/{}/availability", b"maybe"),
                ("zigbee2mqtt/{}/availability", b"[]"),
                ("stat/{}/POWER", b"MAYBE"),
                ("tele/{}/STATE", b"[]"),
                ("tele/{}/STATE", b'{"POWER": "DIM"}'),
                ("tele/{}/LWT", b"sleeping"),
                ("shellies/{}/relay/0", b"dim"),
                ("{}/status/switch:0", b"{}"),
                ("{}/status/switch:0", b'{"output": "on"}'),
                ("curtainwatch/{}/event", b'{"kind": "door"}'),
                ("curtainwatch/{}/event", b'{"kind": "window", "value": "open"}'),
                ("curtainwatch/{}/event", b'{"kind": "door", "value": ""}'),
                (
                    "curtainwatch/{}/event",
                    b'{"kind": "door", "value": "open", "ts": "2026-11-23T07:00:00"}',
                ),
                ("curtainwatch/{}/event", b'{"kind": "door", "value": "open", "ts": 5}'),
            ]
        ),
    )
    # Well-formed events that contradict the registered device: wrong kind, impossible value.
    contradicting = st.sampled_from(
        [
            Sent(
                f"curtainwatch/door-{n}/event",
                _json({"kind": "curtain", "value": "open"}),
                "garbage",
                f"door-{n}",
            ),
            Sent(
                f"curtainwatch/door-{n}/event",
                _json({"kind": "door", "value": "ajar"}),
                "garbage",
                f"door-{n}",
            ),
            Sent(
                f"curtainwatch/light-{n}/event",
                _json({"kind": "light", "value": "open"}),
                "garbage",
                f"light-{n}",
            ),
        ]
    )
    no_device = st.sampled_from(
        [
            Sent("zigbee2mqtt/", b'{"contact": true}', "garbage"),
            Sent("zigbee2mqtt//availability", b"online", "garbage"),
            Sent("curtainwatch//event", b'{"kind": "door", "value": "open"}', "garbage"),
            Sent("stat//POWER", b"ON", "garbage"),
        ]
    )
    return z2m_bad | other_bad | contradicting | no_device


# -- topics curtainwatch ignores -----------------------------------------------------------------


def ignored(n: int) -> st.SearchStrategy[Sent]:
    fixed = st.sampled_from(
        [
            "zigbee2mqtt/bridge/state",
            "zigbee2mqtt/bridge/devices",
            f"zigbee2mqtt/door-{n}/set",
            f"zigbee2mqtt/door-{n}/get/state",
            f"zigbee2mqtt/curtain-{n}/set/position",
            "stat/plug-1/RESULT",
            "tele/plug-1/SENSOR",
            "shellies/shelly1/relay/0/command",
            f"curtainwatch/door-{n}/status",
            "homeassistant/binary_sensor/x/config",
            "",
            "/",
            "#",
            "$SYS/broker/uptime",
        ]
    )
    odd = (
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
        .map(lambda t: "x-" + t)
        .filter(lambda t: not t.endswith("/status/switch:0"))
    )
    payload = st.sampled_from([b"", b"{}", b"\xff", HUGE]) | st.binary(max_size=30)
    return st.builds(lambda topic, p: Sent(topic, p, "ignored"), fixed | odd, payload)


VALID: list[Gen] = [
    door_contact,
    door_state,
    curtain_position,
    curtain_state,
    light_reading,
    card_reading,
    heartbeat,
    availability,
    own_event,
]


def stream(n: int, gens: list[Gen], max_size: int = 40) -> st.SearchStrategy[list[Sent]]:
    return st.lists(st.one_of([g(n) for g in gens]), min_size=1, max_size=max_size)


# -- running a stream and checking it -----------------------------------------------------------


def run(rt: Runtime, sent: list[Sent], cuts: list[int]) -> list[datetime]:
    """Process `sent` in batches of the sizes in `cuts` (the rest in one last batch), each
    message received one second after the previous one; returns the receive times."""
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    t0 = clock.now() + timedelta(minutes=1)
    received = [t0 + timedelta(seconds=i) for i in range(len(sent))]
    i = 0
    for size in [*cuts, len(sent)]:
        batch = list(zip(sent[i : i + size], received[i : i + size], strict=True))
        if not batch:
            break
        clock.set(batch[-1][1])
        rt.ingestor.process([Message(s.topic, s.payload, at) for s, at in batch])
        i += size
    return received


def expected_events(sent: list[Sent], received: list[datetime]) -> list[tuple[str, str, datetime]]:
    """The model: a device's state changes only when a reading implies a different state. A
    reading with its own time (curtainwatch event "ts") is an event by contract: stored once
    per (device, value, time), a repeat of it being a QoS 1 duplicate; it moves the state only
    if it is the newest by time (sensors/ingest.py docstring)."""
    state: dict[str, tuple[str, datetime]] = {}  # device -> (state, time of the reading)
    stamped: set[tuple[str, str, datetime]] = set()
    out = []
    for s, at in zip(sent, received, strict=True):
        if s.kind != "valid" or s.device is None:
            continue
        for value in s.states:
            now = state.get(s.device)
            if s.ts is not None:
                key = (s.device, value, s.ts.astimezone(UTC))
                if key not in stamped:
                    stamped.add(key)
                    out.append(key)
                    if now is None or s.ts >= now[1]:
                        state[s.device] = (value, s.ts)
            elif now is None or now[0] != value:
                state[s.device] = (value, at)
                out.append((s.device, value, at.astimezone(UTC)))
    return out


def stored_events(rt: Runtime, n: int) -> list[tuple[str, str, datetime]]:
    with rt.sessions() as s:
        rows = s.execute(
            select(Event.device_id, Event.value, Event.ts)
            .where(Event.resident_id == f"r-{n}")
            .order_by(Event.id)
        ).all()
    return [(d, v, ts) for d, v, ts in rows]


def dead_letters_after(rt: Runtime, last_id: int) -> list[DeadLetter]:
    with rt.sessions() as s:
        return list(
            s.scalars(select(DeadLetter).where(DeadLetter.id > last_id).order_by(DeadLetter.id))
        )


def max_dead_id(rt: Runtime) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.max(DeadLetter.id))) or 0


def unknown_counts(rt: Runtime, n: int) -> dict[str, int]:
    with rt.sessions() as s:
        rows = s.execute(
            select(UnknownDevice.id, UnknownDevice.messages).where(
                UnknownDevice.id.like(f"ghost-{n}-%")
            )
        ).all()
    return dict(rows)


def check_stream(rt: Runtime, n: int, sent: list[Sent], cuts: list[int]) -> None:
    stats_before = (
        rt.ingestor.stats.messages,
        rt.ingestor.stats.ignored,
        rt.ingestor.stats.dead_letters,
        rt.ingestor.stats.events,
    )
    dead_before = max_dead_id(rt)

    received = run(rt, sent, cuts)  # must not raise

    model = expected_events(sent, received)
    assert stored_events(rt, n) == model

    garbage_sent = [s for s in sent if s.kind == "garbage"]
    dead = dead_letters_after(rt, dead_before)
    assert [(d.topic, d.payload) for d in dead] == [
        (storable(s.topic), s.payload) for s in garbage_sent
    ]
    for d in dead:
        assert d.error.startswith(d.topic + ": ") and len(d.error) > len(d.topic) + 2, d.error

    unknown = Counter(storable(s.device) for s in sent if s.kind == "unknown" and s.device)
    assert unknown_counts(rt, n) == dict(unknown)

    ignored_sent = sum(s.kind == "ignored" for s in sent)
    stats = rt.ingestor.stats
    assert (stats.messages, stats.ignored, stats.dead_letters, stats.events) == (
        stats_before[0] + len(sent),
        stats_before[1] + ignored_sent,
        stats_before[2] + len(garbage_sent),
        stats_before[3] + len(model),
    )


cuts_strategy = st.lists(st.integers(1, 12), max_size=6)


# -- the properties --------------------------------------------------------------------------------


def test_valid_readings_become_events_in_order(db_url: str) -> None:
    homes = Homes(make_runtime(db_url))

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        n = homes.next()
        sent = data.draw(stream(n, VALID))
        check_stream(homes.rt, n, sent, data.draw(cuts_strategy))

    check()


def test_mixed_streams_are_stored_sorted_and_counted(db_url: str) -> None:
    homes = Homes(make_runtime(db_url))
    gens: list[Gen] = [*VALID, unknown_device, unknown_device, garbage, garbage, ignored]

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        n = homes.next()
        sent = data.draw(stream(n, gens))
        check_stream(homes.rt, n, sent, data.draw(cuts_strategy))

    check()


FAMILY_HEADS = [
    "zigbee2mqtt",
    "stat",
    "tele",
    "shellies",
    "curtainwatch",
    "",
    "door-0",
    "x",
    "zigbee2mqtt/bridge",
]
FAMILY_TAILS = [
    "",
    "POWER",
    "POWER1",
    "STATE",
    "LWT",
    "relay",
    "0",
    "status",
    "switch:0",
    "event",
    "availability",
    "set",
    "get",
    "door-0",
    "curtain-0",
    "card-0",
]
any_topic = st.lists(
    st.sampled_from(FAMILY_HEADS[:1])
    | st.sampled_from(FAMILY_HEADS)
    | st.sampled_from(FAMILY_TAILS)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    min_size=1,
    max_size=5,
).map("/".join)
any_payload = st.binary(max_size=60) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "contact",
                    "position",
                    "state",
                    "battery",
                    "kind",
                    "value",
                    "ts",
                    "output",
                    "POWER",
                    "occupancy",
                    "action",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
).map(lambda v: json.dumps(v).encode())


def test_arbitrary_messages_never_raise_and_are_accounted_for(db_url: str) -> None:
    """No model here: anything at all on any topic. `process` does not raise, every message
    is counted, a dead letter always names its topic, and the batch is either ignored, dead
    or read, never two of those."""
    rt = make_runtime(db_url)
    register(rt, 0)

    @MANY
    @given(st.lists(st.tuples(any_topic, any_payload), min_size=1, max_size=30), cuts_strategy)
    def check(messages: list[tuple[str, bytes]], cuts: list[int]) -> None:
        before = (rt.ingestor.stats.messages, rt.ingestor.stats.ignored)
        dead_before = max_dead_id(rt)
        run(rt, [Sent(t, p, "?") for t, p in messages], cuts)
        stats = rt.ingestor.stats
        dead = dead_letters_after(rt, dead_before)
        assert stats.messages == before[0] + len(messages)
        assert (stats.ignored - before[1]) + len(dead) <= len(messages)
        assert Counter(d.topic for d in dead) <= Counter(storable(t) for t, _ in messages)
        for d in dead:
            assert d.error.startswith(d.topic + ": "), d.error

    check()


# -- unknown devices, and known gaps -----------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        pytest.param("zigbee2mqtt/stranger", b'{"contact": true}', id="z2m-state"),
        pytest.param("zigbee2mqtt/stranger/availability", b'{"state": "online"}', id="z2m-avail"),
        pytest.param("tele/stranger/STATE", b'{"POWER": "ON"}', id="tasmota-state"),
        pytest.param("stat/stranger/POWER", b"ON", id="tasmota-power"),
        pytest.param("tele/stranger/LWT", b"Online", id="tasmota-lwt"),
        pytest.param("shellies/stranger/relay/0", b"on", id="shelly-relay"),
        pytest.param("stranger/status/switch:0", b'{"output": true}', id="shelly-gen2"),
        pytest.param(
            "curtainwatch/stranger/event", b'{"kind": "door", "value": "open"}', id="own-event"
        ),
    ],
)
def test_a_device_no_resident_has_is_listed_for_staff(
    db_url: str, topic: str, payload: bytes
) -> None:
    rt = make_runtime(db_url)
    register(rt, 0)
    rt.ingestor.process([Message(topic, payload, START), Message(topic, payload, START)])
    with rt.sessions() as s:
        row = s.get(UnknownDevice, "stranger")
        assert row is not None
        assert (row.topic, row.messages) == (topic, 2)
    assert rt.ingestor.stats.unknown == 1


def test_nul_in_a_topic_is_stored_escaped_on_every_database(db_url: str) -> None:
    """PostgreSQL text cannot hold NUL: unknown devices and dead letters keep it as \\x00
    (on SQLite too), and two ids that are the same once stored make one row, not an error."""
    rt = make_runtime(db_url)
    register(rt, 0)
    rt.ingestor.process(
        [
            Message("zigbee2mqtt/ghost-\x00", b'{"contact": true}', START),
            Message("zigbee2mqtt/ghost-\\x00", b'{"contact": false}', START),
            Message("zigbee2mqtt/bad-\x00", b'{"contact": "maybe"}', START),
        ]
    )
    with rt.sessions() as s:
        ghost = s.get_one(UnknownDevice, "ghost-\\x00")
        assert (ghost.topic, ghost.messages) == ("zigbee2mqtt/ghost-\\x00", 2)
        [dead] = s.query(DeadLetter).all()
    assert dead.topic == "zigbee2mqtt/bad-\\x00"
    assert dead.error.startswith("zigbee2mqtt/bad-\\x00: ")


@pytest.mark.parametrize(
    "ts", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "9999-12-31T20:00:00+00:00"]
)
def test_an_event_time_out_of_range_does_not_stop_ingestion(db_url: str, ts: str) -> None:
    rt = make_runtime(db_url)
    register(rt, 0)
    bad = _json({"kind": "door", "value": "open", "ts": ts})
    rt.ingestor.process(
        [
            Message("curtainwatch/door-0/event", bad, START),
            Message("zigbee2mqtt/curtain-0", b'{"position": 100}', START),
        ]
    )
    assert [(d, v) for d, v, _ in stored_events(rt, 0)] == [("curtain-0", "open")]


# -- a batch the database refuses ------------------------------------------------------------------


def _hide_events_table(rt: Runtime, hide: bool) -> None:
    a, b = ("events", "events_hidden") if hide else ("events_hidden", "events")
    with rt.db.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {a} RENAME TO {b}")


BATCH = [
    ("zigbee2mqtt/door-0", b'{"contact": false}'),  # door opens: an event
    ("zigbee2mqtt/curtain-0", b'{"position": 100}'),  # curtain opens: an event
    ("zigbee2mqtt/door-0", b'{"contact": true}'),  # door closes: an event
    ("zigbee2mqtt/door-0", b'{"contact": true}'),  # no change: no event
    ("zigbee2mqtt/door-0", b'{"contact": "yes"}'),  # a dead letter
    ("zigbee2mqtt/ghost", b'{"contact": true}'),  # an unknown device
    ("zigbee2mqtt/bridge/state", b"online"),  # ignored
]


def _batch() -> list[Message]:
    return [Message(t, p, START + timedelta(seconds=i)) for i, (t, p) in enumerate(BATCH)]


def test_a_refused_batch_raises_and_its_retry_stores_it_exactly_once(db_url: str) -> None:
    rt = make_runtime(db_url)
    register(rt, 0)
    _hide_events_table(rt, True)
    with pytest.raises(StatementError):
        rt.ingestor.process(_batch())
    assert rt.ingestor.stats.messages == 0  # nothing was stored, nothing is counted
    _hide_events_table(rt, False)
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        assert s.scalar(select(func.count()).select_from(UnknownDevice)) == 0

    rt.ingestor.process(_batch())  # the retry: the registry forgot the failed batch's states
    assert [(d, v) for d, v, _ in stored_events(rt, 0)] == [
        ("door-0", "open"),
        ("curtain-0", "open"),
        ("door-0", "closed"),
    ]
    with rt.sessions() as s:
        assert [d.topic for d in s.scalars(select(DeadLetter))] == ["zigbee2mqtt/door-0"]
        assert [(u.id, u.messages) for u in s.scalars(select(UnknownDevice))] == [("ghost", 1)]
    assert (rt.ingestor.stats.messages, rt.ingestor.stats.events) == (len(BATCH), 3)

    # The same readings again: only real changes count (the door was left closed, the
    # curtain open), so the door opens and closes once more and the curtain stays open.
    rt.ingestor.process(_batch()[:4])
    assert [(d, v) for d, v, _ in stored_events(rt, 0)][3:] == [
        ("door-0", "open"),
        ("door-0", "closed"),
    ]


def test_a_refused_batch_is_counted_once_after_its_retry(db_url: str) -> None:
    rt = make_runtime(db_url)
    register(rt, 0)
    _hide_events_table(rt, True)
    with pytest.raises(StatementError):
        rt.ingestor.process(_batch())
    _hide_events_table(rt, False)
    rt.ingestor.process(_batch())
    assert (rt.ingestor.stats.messages, rt.ingestor.stats.ignored) == (len(BATCH), 1)


def test_live_writer_buries_a_message_the_database_refuses_and_keeps_flowing(db_url: str) -> None:
    """A lone surrogate in a topic cannot be encoded by the database: the batch fails, the
    writer stores its messages one by one, buries the bad one in dead letters (its topic
    escaped, NUL too), and goes on."""
    rt = make_runtime(db_url)
    register(rt, 0)
    rt.ingestor.start()
    try:
        rt.ingestor.submit("zigbee2mqtt/door-0", b'{"contact": false}')
        rt.ingestor.submit("zigbee2mqtt/odd-\ud800\x00", b'{"contact": false}')
        rt.ingestor.submit("zigbee2mqtt/curtain-0", b'{"position": 100}')
        assert rt.ingestor.wait_idle(30)
        rt.ingestor.submit("zigbee2mqtt/door-0", b'{"contact": true}')
        assert rt.ingestor.wait_idle(30)
    finally:
        rt.ingestor.stop()
    assert [(d, v) for d, v, _ in stored_events(rt, 0)] == [
        ("door-0", "open"),
        ("curtain-0", "open"),
        ("door-0", "closed"),
    ]
    with rt.sessions() as s:
        [dead] = s.query(DeadLetter).all()
    assert dead.topic == "zigbee2mqtt/odd-\\ud800\\x00"
    assert "could not be stored" in dead.error
