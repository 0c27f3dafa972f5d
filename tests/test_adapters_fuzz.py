"""Property tests for sensors.adapters.parse: whatever arrives over MQTT, parse returns sound
Readings or raises PayloadError/IgnoredTopic, never anything else."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.adapters import MAX_PAYLOAD_BYTES, _load, parse
from sensors.readings import DEVICE_KINDS, READING_KINDS, IgnoredTopic, PayloadError, Reading

# Modest example counts: the whole file must stay well under 20 s.
FAST = settings(max_examples=150, deadline=None)
FEW = settings(max_examples=60, deadline=None)

VALUE_TYPES: dict[str, type] = {
    "contact": bool,
    "position": float,
    "state": str,
    "illuminance": float,
    "occupancy": bool,
    "action": str,
    "battery": float,
    "availability": bool,
    "seen": bool,
    "event": str,
}

Z2M_FIELDS = ("contact", "position", "state", "illuminance", "occupancy", "action", "battery")
KNOWN_TOPICS = [
    "zigbee2mqtt/door-301",
    "zigbee2mqtt/Living room/curtain",
    "zigbee2mqtt/door-301/availability",
    "stat/plug-7/POWER",
    "tele/plug-7/STATE",
    "tele/plug-7/LWT",
    "shellies/shelly1-AB12/relay/0",
    "shellyplus1-a8/status/switch:0",
    "curtainwatch/curtain-301/event",
]
FAMILY_WORDS = [
    "zigbee2mqtt", "stat", "tele", "shellies", "curtainwatch", "POWER", "POWER1", "STATE",
    "LWT", "relay", "0", "status", "switch:0", "event", "availability", "bridge", "set", "get",
    "", "door-301",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["ON", "off", "open", "CLOSE", "online", "Offline", "curtain", "", " "])
    | st.sampled_from(["2026-11-23T07:31:05+08:00", "2026-11-23T07:31:05", "2026-11-23", "Z"])
    | st.just(10**400)  # too big for a float
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
topics = (
    st.sampled_from(KNOWN_TOPICS)
    | st.text(max_size=40)
    | st.lists(st.sampled_from(FAMILY_WORDS) | st.text(max_size=6), min_size=1, max_size=5).map(
        "/".join
    )
)
# Payloads that break naive decoders: deep nesting, over-long ints, BOMs, UTF-16, NUL.
EDGE_PAYLOADS = [
    b"[" * 5000,
    b'{"a":' * 3000,
    b"1" * 5000,
    b'{"battery": ' + b"9" * 400 + b"}",
    b'{"position": -0.0, "illuminance": 1e309}',
    b'\xef\xbb\xbf{"contact": true}',
    '{"contact": true}'.encode("utf-16"),
    b'{"contact": true}\x00',
    b'"\\ud800"',
    b'{"kind": "door", "value": "open", "ts": "\\ud800"}',
]
payloads = (
    st.sampled_from(EDGE_PAYLOADS)
    | st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.text(max_size=50).map(lambda t: t.encode())
)


def outcome(topic: str, payload: bytes) -> list[Reading] | PayloadError | IgnoredTopic:
    """parse's answer, after checking it keeps parse's promises."""
    try:
        readings = parse(topic, payload)
    except (PayloadError, IgnoredTopic) as e:
        # Dead letters and skip logs must say where the message came from.
        assert str(e).startswith(f"{topic}: ")
        return e
    assert isinstance(readings, list)
    for reading in readings:
        assert isinstance(reading, Reading)
        assert reading.kind in READING_KINDS
        assert reading.device_id
        assert type(reading.value) is VALUE_TYPES[reading.kind]
        if isinstance(reading.value, float):
            assert math.isfinite(reading.value)
        if reading.kind == "state":
            assert reading.value in ("ON", "OFF", "OPEN", "CLOSE", "STOP")
        if reading.ts is not None:
            assert reading.ts.utcoffset() is not None
    return readings


def test_value_types_cover_every_reading_kind() -> None:
    assert set(VALUE_TYPES) == set(READING_KINDS)


@FAST
@given(topic=st.sampled_from(KNOWN_TOPICS), payload=payloads)
def test_any_payload_on_a_known_topic(topic: str, payload: bytes) -> None:
    result = outcome(topic, payload)
    # Known topics are never ignored: a bad payload there is a dead letter.
    assert not isinstance(result, IgnoredTopic)


@FAST
@given(topic=topics, payload=payloads)
def test_any_topic_any_payload(topic: str, payload: bytes) -> None:
    outcome(topic, payload)


@FAST
@given(topic=st.text(max_size=40), payload=st.binary(max_size=100))
def test_topics_outside_every_family_are_ignored(topic: str, payload: bytes) -> None:
    parts = topic.split("/")
    known_heads = ("zigbee2mqtt", "stat", "tele", "shellies", "curtainwatch")
    gen2 = len(parts) == 3 and parts[1:] == ["status", "switch:0"]
    if parts[0] in known_heads or gen2:
        return
    assert isinstance(outcome(topic, payload), IgnoredTopic)


FIELDS = [("zigbee2mqtt/door-301", field) for field in Z2M_FIELDS] + [
    ("zigbee2mqtt/door-301/availability", "state"),
    ("tele/plug-7/STATE", "POWER"),
    ("tele/plug-7/STATE", "POWER1"),
    ("shellyplus1-a8/status/switch:0", "output"),
    ("curtainwatch/curtain-301/event", "kind"),
    ("curtainwatch/curtain-301/event", "value"),
    ("curtainwatch/curtain-301/event", "ts"),
]


def is_number(v: object, low: float, high: float) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v)) and low <= v <= high
    except OverflowError:  # an int too big for a float
        return False


# Which JSON values each field accepts (None: the field is absent, so no opinion).
ACCEPTS: dict[str, Callable[[object], bool | None]] = {
    "contact": lambda v: v is None or isinstance(v, bool),
    "occupancy": lambda v: v is None or isinstance(v, bool),
    "position": lambda v: v is None or is_number(v, 0, 100),
    "battery": lambda v: v is None or is_number(v, 0, 100),
    "illuminance": lambda v: v is None or is_number(v, 0, math.inf),
    "state": lambda v: (
        v is None or isinstance(v, str) and v.upper() in ("ON", "OFF", "OPEN", "CLOSE", "STOP")
    ),
    "action": lambda v: v is None or isinstance(v, str),
    "POWER": lambda v: v is None or isinstance(v, str) and v.strip().upper() in ("ON", "OFF"),
    "output": lambda v: isinstance(v, bool),
    "kind": lambda v: v in DEVICE_KINDS,
    "value": lambda v: isinstance(v, str) and bool(v.strip()),
    "ts": lambda v: None if isinstance(v, str) else v is None,
}
ACCEPTS["POWER1"] = ACCEPTS["POWER"]


# Scalars first: a field's wrong type is most often a wrong scalar, rarely a nested object.
field_values = st.one_of(
    st.booleans(),
    st.sampled_from([0, 100, 100.5, -1, 20, "", "true", "1", None]),
    json_scalars,
    json_values,
)


@pytest.mark.parametrize(("topic", "field"), FIELDS)
@FEW
@given(value=field_values)
def test_any_json_value_in_each_field(topic: str, field: str, value: object) -> None:
    # Other event fields valid, so the field under test decides the outcome.
    base: dict[str, object] = (
        {"kind": "curtain", "value": "open"} if topic.startswith("curtainwatch/") else {}
    )
    result = outcome(topic, json.dumps({**base, field: value}).encode())
    if isinstance(result, PayloadError):
        # The reason names the culprit (availability's only field is its "state").
        reason = str(result).removeprefix(f"{topic}: ")
        assert reason.startswith((f'"{field}" ', f"{field} ", "availability must"))
    else:
        assert not isinstance(result, IgnoredTopic)
    if topic.endswith("/availability"):
        accepted = isinstance(value, str) and value.strip().lower() in ("online", "offline")
        assert isinstance(result, list) == accepted
    elif ACCEPTS[field](value) is not None:
        assert isinstance(result, list) == ACCEPTS[field](value)


@FEW
@given(
    topic=st.sampled_from(KNOWN_TOPICS),
    size=st.integers(min_value=MAX_PAYLOAD_BYTES + 1, max_value=4 * MAX_PAYLOAD_BYTES),
    filler=st.sampled_from([b" ", b"[", b"\xff", b"9"]),
)
def test_huge_payloads_are_refused(topic: str, size: int, filler: bytes) -> None:
    # Even a valid JSON object is refused once it is over the limit.
    payload = b"{" + filler * (size - 2) + b"}" if filler == b" " else filler * size
    result = outcome(topic, payload)
    assert isinstance(result, PayloadError)
    assert str(result) == f"{topic}: payload too large: {size} bytes"


junk_keys = st.text(max_size=10).filter(lambda k: k not in Z2M_FIELDS)


@FAST
@given(
    closed=st.booleans(),
    junk=st.dictionaries(junk_keys, json_values, max_size=6),
    device=st.text(min_size=1, max_size=20).filter(
        lambda d: not d.startswith("bridge") and "/set" not in d and "/get" not in d
        and not d.endswith("/availability")
    ),
)  # fmt: skip
def test_contact_among_unknown_fields(closed: bool, junk: dict[str, object], device: str) -> None:
    payload = json.dumps({**junk, "contact": closed}).encode()
    readings = outcome(f"zigbee2mqtt/{device}", payload)
    assert readings == [Reading(device, "contact", closed), Reading(device, "seen", True)]


@FAST
@given(
    closed=st.booleans(),
    garbage=st.lists(st.tuples(topics, payloads), max_size=8),
    where=st.integers(min_value=0, max_value=8),
)
def test_contact_among_garbage_messages(
    closed: bool, garbage: list[tuple[str, bytes]], where: int
) -> None:
    # parse is pure: nothing that came before can change what a good message means.
    valid = ("zigbee2mqtt/door-301", json.dumps({"contact": closed, "linkquality": 90}).encode())
    stream = [*garbage[:where], valid, *garbage[where:]]
    results = [outcome(topic, payload) for topic, payload in stream]
    assert results[min(where, len(garbage))] == [
        Reading("door-301", "contact", closed),
        Reading("door-301", "seen", True),
    ]


valid_fields = st.fixed_dictionaries(
    {},
    optional={
        "contact": st.booleans(),
        "position": st.integers(0, 100) | st.floats(0, 100),
        "state": st.sampled_from(["ON", "off", "Open", "CLOSE", "stop"]),
        "illuminance": st.integers(0, 100_000) | st.floats(0, 1e6),
        "occupancy": st.booleans(),
        "action": st.text(min_size=1, max_size=10),
        "battery": st.integers(0, 100),
        "linkquality": st.integers(0, 255),
    },
)


@FAST
@given(fields=valid_fields)
def test_valid_zigbee2mqtt_objects_parse_field_by_field(fields: dict[str, object]) -> None:
    readings = outcome("zigbee2mqtt/dev", json.dumps(fields).encode())
    assert isinstance(readings, list)
    expected_kinds = [k for k in Z2M_FIELDS if k in fields] + ["seen"]
    assert [reading.kind for reading in readings] == expected_kinds
    for reading in readings[:-1]:
        raw = fields[reading.kind]
        assert reading.value == (
            raw.upper() if isinstance(raw, str) and reading.kind == "state" else raw
        )


# -- JSON decoding ------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(JSON_VALUES, st.sampled_from(["", " ", "\n", "\t \r\n"]), st.sampled_from(["", " ", "\n"]))
def test_payload_json_is_what_json_loads_reads(value: object, before: str, after: str) -> None:
    text = before + json.dumps(value, separators=(",", ":")) + after
    assert _load(text) == json.loads(text)


@FAST
@given(st.text(alphabet='{}[]":,0123456789.eE+-truefalsn \\x', max_size=30))
def test_payload_json_fails_where_json_loads_fails(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(PayloadError, match="not valid JSON"):
            _load(text)
    else:
        got = _load(text)
        assert got == expected or (got != got and expected != expected)  # NaN is not NaN
