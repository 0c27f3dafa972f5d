"""Table-driven tests for sensors.adapters.parse: every topic family, its edges and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sensors.adapters import MAX_PAYLOAD_BYTES, parse
from sensors.readings import IgnoredTopic, PayloadError, Reading

CST = timezone(timedelta(hours=8))


def seen(dev: str) -> Reading:
    return Reading(dev, "seen", True)


PARSED = [
    # zigbee2mqtt device messages: one reading per recognised field, in order, then "seen".
    ("zigbee2mqtt/door-301", b'{"contact": true}', [Reading("door-301", "contact", True)]),
    (
        "zigbee2mqtt/door-301",
        b'{"contact": false, "battery": 87, "linkquality": 120}',
        [Reading("door-301", "contact", False), Reading("door-301", "battery", 87.0)],
    ),
    (
        "zigbee2mqtt/curtain-301",
        b'{"position": 100, "state": "open"}',
        [Reading("curtain-301", "position", 100.0), Reading("curtain-301", "state", "OPEN")],
    ),
    (
        "zigbee2mqtt/curtain-301",
        b'{"position": 0.5, "state": "STOP"}',
        [Reading("curtain-301", "position", 0.5), Reading("curtain-301", "state", "STOP")],
    ),
    ("zigbee2mqtt/curtain-301", b'{"state": "close"}', [Reading("curtain-301", "state", "CLOSE")]),
    (
        "zigbee2mqtt/light-301",
        b'{"state": "On", "illuminance": 12}',
        [Reading("light-301", "state", "ON"), Reading("light-301", "illuminance", 12.0)],
    ),
    ("zigbee2mqtt/light-301", b'{"illuminance": 0}', [Reading("light-301", "illuminance", 0.0)]),
    ("zigbee2mqtt/plug", b'{"state": "off"}', [Reading("plug", "state", "OFF")]),
    (
        "zigbee2mqtt/pir",
        b'{"occupancy": true, "illuminance": 3, "battery": null}',
        [Reading("pir", "illuminance", 3.0), Reading("pir", "occupancy", True)],
    ),
    ("zigbee2mqtt/card", b'{"action": "single"}', [Reading("card", "action", "single")]),
    ("zigbee2mqtt/card", b'{"action": ""}', []),
    ("zigbee2mqtt/card", b'{"action": null}', []),
    # Field order is fixed, whatever order the payload uses.
    (
        "zigbee2mqtt/all",
        b'{"battery": 50, "action": "hold", "occupancy": false, "illuminance": 7.5,'
        b' "state": "ON", "position": 20, "contact": true}',
        [
            Reading("all", "contact", True),
            Reading("all", "position", 20.0),
            Reading("all", "state", "ON"),
            Reading("all", "illuminance", 7.5),
            Reading("all", "occupancy", False),
            Reading("all", "action", "hold"),
            Reading("all", "battery", 50.0),
        ],
    ),
    # Heartbeats and unknown fields still prove the device is alive.
    ("zigbee2mqtt/door-301", b"{}", []),
    (
        "zigbee2mqtt/door-301",
        b'{"battery": 90, "linkquality": 100}',
        [Reading("door-301", "battery", 90.0)],
    ),
    ("zigbee2mqtt/door-301", b'{"linkquality": 100, "temperature": 21.5, "last_seen": "x"}', []),
    # Friendly names may contain spaces, slashes and non-ASCII.
    (
        "zigbee2mqtt/Living room/curtain",
        b'{"position": 40}',
        [Reading("Living room/curtain", "position", 40.0)],
    ),
    ("zigbee2mqtt/王阿姨/窗帘", b'{"contact": true}', [Reading("王阿姨/窗帘", "contact", True)]),
]
# Every zigbee2mqtt device message ends with its "seen" reading.
PARSED = [(t, p, r + [seen(t.removeprefix("zigbee2mqtt/"))]) for t, p, r in PARSED] + [
    # zigbee2mqtt availability: 2.x JSON and legacy plain text.
    (
        "zigbee2mqtt/door-301/availability",
        b'{"state": "online"}',
        [Reading("door-301", "availability", True)],
    ),
    (
        "zigbee2mqtt/door-301/availability",
        b'{"state":"offline"}',
        [Reading("door-301", "availability", False)],
    ),
    ("zigbee2mqtt/door-301/availability", b"online", [Reading("door-301", "availability", True)]),
    ("zigbee2mqtt/door-301/availability", b"offline", [Reading("door-301", "availability", False)]),
    ("zigbee2mqtt/Hall/door/availability", b"online", [Reading("Hall/door", "availability", True)]),
    # Tasmota.
    ("stat/plug-7/POWER", b"ON", [Reading("plug-7", "state", "ON")]),
    ("stat/plug-7/POWER", b"off", [Reading("plug-7", "state", "OFF")]),
    ("stat/plug-7/POWER1", b"On", [Reading("plug-7", "state", "ON")]),
    (
        "tele/plug-7/STATE",
        b'{"Time": "2026-11-23T07:31:05", "Uptime": "0T01:00:00", "POWER": "ON"}',
        [Reading("plug-7", "state", "ON"), seen("plug-7")],
    ),
    (
        "tele/plug-7/STATE",
        b'{"POWER1": "OFF"}',
        [Reading("plug-7", "state", "OFF"), seen("plug-7")],
    ),
    ("tele/plug-7/STATE", b'{"Uptime": "0T01:00:00"}', [seen("plug-7")]),
    ("tele/plug-7/LWT", b"Online", [Reading("plug-7", "availability", True)]),
    ("tele/plug-7/LWT", b"Offline", [Reading("plug-7", "availability", False)]),
    # Shelly Gen1 and Gen2.
    ("shellies/shelly1-AB12/relay/0", b"on", [Reading("shelly1-AB12", "state", "ON")]),
    ("shellies/shelly1-AB12/relay/0", b"off", [Reading("shelly1-AB12", "state", "OFF")]),
    ("shellies/shelly1-AB12/relay/0", b"overpower", [Reading("shelly1-AB12", "state", "OFF")]),
    (
        "shellyplus1-a8/status/switch:0",
        b'{"id": 0, "source": "init", "output": true, "apower": 3}',
        [Reading("shellyplus1-a8", "state", "ON"), seen("shellyplus1-a8")],
    ),
    (
        "shellyplus1-a8/status/switch:0",
        b'{"output": false}',
        [Reading("shellyplus1-a8", "state", "OFF"), seen("shellyplus1-a8")],
    ),
    # curtainwatch's own events.
    (
        "curtainwatch/curtain-301/event",
        b'{"kind": "curtain", "value": "open", "ts": "2026-11-23T07:31:05+08:00"}',
        [
            Reading(
                "curtain-301",
                "event",
                "open",
                ts=datetime(2026, 11, 23, 7, 31, 5, tzinfo=CST),
                device_kind="curtain",
            )
        ],
    ),
    (
        "curtainwatch/card-301/event",
        b'{"kind": "help", "value": "HELP"}',
        [Reading("card-301", "event", "help", device_kind="help")],
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": "Closed", "ts": null}',
        [Reading("door-301", "event", "closed", device_kind="door")],
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": "open", "ts": "2026-11-22T23:31:05Z"}',
        [
            Reading(
                "door-301",
                "event",
                "open",
                ts=datetime(2026, 11, 22, 23, 31, 5, tzinfo=UTC),
                device_kind="door",
            )
        ],
    ),
]


@pytest.mark.parametrize(("topic", "payload", "expected"), PARSED)
def test_parse(topic: str, payload: bytes, expected: list[Reading]) -> None:
    assert parse(topic, payload) == expected


def test_event_ts_keeps_its_offset() -> None:
    [reading] = parse(
        "curtainwatch/curtain-301/event",
        b'{"kind": "curtain", "value": "open", "ts": "2026-11-23T07:31:05+08:00"}',
    )
    assert reading.ts is not None and reading.ts.utcoffset() == timedelta(hours=8)


# Exact reasons (after "<topic>: "): they are what staff read in the dead-letter table.
ERRORS = [
    ("zigbee2mqtt/door-301", b'{"contact": "yes"}', '"contact" must be true or false, got "yes"'),
    (
        "zigbee2mqtt/curtain-301",
        b'{"position": 250}',
        '"position" must be between 0 and 100, got 250',
    ),
    ("zigbee2mqtt/curtain-301", b'{"position": true}', '"position" must be a number, got true'),
    (
        "zigbee2mqtt/curtain-301",
        b'{"position": NaN}',
        '"position" must be a finite number, got NaN',
    ),
    (
        "zigbee2mqtt/light-301",
        b'{"illuminance": Infinity}',
        '"illuminance" must be a finite number, got Infinity',
    ),
    (
        "zigbee2mqtt/light-301",
        b'{"illuminance": 1e999}',
        '"illuminance" must be a finite number, got Infinity',
    ),
    ("zigbee2mqtt/light-301", b'{"illuminance": -4}', '"illuminance" must not be negative, got -4'),
    ("zigbee2mqtt/door-301", b'{"battery": "x"}', '"battery" must be a number, got "x"'),
    ("zigbee2mqtt/door-301", b'{"battery": -1}', '"battery" must be between 0 and 100, got -1'),
    (
        "zigbee2mqtt/light-301",
        b'{"state": "TOGGLE"}',
        '"state" must be one of ON, OFF, OPEN, CLOSE, STOP, got "TOGGLE"',
    ),
    (
        "zigbee2mqtt/light-301",
        b'{"state": 1}',
        '"state" must be one of ON, OFF, OPEN, CLOSE, STOP, got 1',
    ),
    ("zigbee2mqtt/pir", b'{"occupancy": 1}', '"occupancy" must be true or false, got 1'),
    ("zigbee2mqtt/card", b'{"action": 3}', '"action" must be a string, got 3'),
    ("zigbee2mqtt/card", b'{"action": ["single"]}', '"action" must be a string, got an array'),
    ("zigbee2mqtt/door-301", b"[1, 2]", "payload must be a JSON object, got an array"),
    ("zigbee2mqtt/door-301", b'"closed"', 'payload must be a JSON object, got "closed"'),
    (
        "zigbee2mqtt/door-301",
        b"",
        "payload is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    (
        "zigbee2mqtt/door-301",
        b'{"contact": tru}',
        "payload is not valid JSON: Expecting value: line 1 column 13 (char 12)",
    ),
    ("zigbee2mqtt/door-301", b'{"contact": \xff}', "payload is not valid UTF-8 (byte 12)"),
    ("zigbee2mqtt/door-301", b"[" * 100_000, "payload too large: 100000 bytes"),
    ("zigbee2mqtt/door-301", b"[" * 60_000, "payload is not valid JSON: nested too deeply"),
    (
        "zigbee2mqtt/door-301",
        b'{"battery": ' + b"9" * 5000 + b"}",
        "payload is not valid JSON: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits; "
        "use sys.set_int_max_str_digits() to increase the limit",
    ),
    (
        "zigbee2mqtt/door-301/availability",
        b"maybe",
        'availability must be {"state": "online"|"offline"} or plain online/offline, got "maybe"',
    ),
    (
        "zigbee2mqtt/door-301/availability",
        b'{"state": "gone"}',
        'availability must be online or offline, got "gone"',
    ),
    (
        "zigbee2mqtt/door-301/availability",
        b'{"online": true}',
        'availability must be {"state": "online"|"offline"} or plain online/offline, got an object',
    ),
    ("zigbee2mqtt//availability", b"online", "empty device id"),
    ("zigbee2mqtt/", b"{}", "empty device id"),
    ("stat/plug-7/POWER", b"TOGGLE", 'POWER must be ON or OFF, got "TOGGLE"'),
    ("stat//POWER", b"ON", "empty device id"),
    ("tele/plug-7/STATE", b'{"POWER": 1}', "POWER must be ON or OFF, got 1"),
    (
        "tele/plug-7/STATE",
        b"ON",
        "payload is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    ("tele/plug-7/LWT", b"Dead", 'availability must be online or offline, got "Dead"'),
    ("shellies/s1/relay/0", b"1", 'relay state must be on, off or overpower, got "1"'),
    ("s2/status/switch:0", b'{"output": "on"}', '"output" must be true or false, got "on"'),
    ("s2/status/switch:0", b'{"id": 0}', '"output" is missing'),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "gate", "value": "open"}',
        '"kind" must be one of curtain, door, light, help, motion, '
        'contact, power, water, got "gate"',
    ),
    ("curtainwatch/door-301/event", b'{"value": "open"}', '"kind" is missing'),
    ("curtainwatch/door-301/event", b'{"kind": "door"}', '"value" is missing'),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": " "}',
        '"value" must be a non-empty string, got " "',
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": true}',
        '"value" must be a non-empty string, got true',
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": "open", "ts": "2026-11-23T07:31:05"}',
        '"ts" must be an ISO-8601 time with a UTC offset, got "2026-11-23T07:31:05"',
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": "open", "ts": "yesterday"}',
        '"ts" must be an ISO-8601 time with a UTC offset, got "yesterday"',
    ),
    (
        "curtainwatch/door-301/event",
        b'{"kind": "door", "value": "open", "ts": 1795000000}',
        '"ts" must be an ISO-8601 time with a UTC offset, got 1795000000',
    ),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), ERRORS)
def test_payload_errors(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(topic, payload)
    assert str(info.value) == f"{topic}: {reason}"


def test_payload_limit_is_inclusive() -> None:
    padded = b'{"contact": true}'.ljust(MAX_PAYLOAD_BYTES)
    assert MAX_PAYLOAD_BYTES == 65536
    assert parse("zigbee2mqtt/door-301", padded)[0] == Reading("door-301", "contact", True)
    with pytest.raises(PayloadError, match="payload too large: 65537 bytes"):
        parse("zigbee2mqtt/door-301", padded + b" ")


def test_first_bad_field_spoils_the_whole_message() -> None:
    # A half-trusted message is worse than a dead letter: nothing from it is used.
    with pytest.raises(PayloadError, match='"battery"'):
        parse("zigbee2mqtt/door-301", b'{"contact": false, "battery": "low"}')


IGNORED = [
    ("zigbee2mqtt/bridge", "bridge"),
    ("zigbee2mqtt/bridge/state", "bridge"),
    ("zigbee2mqtt/bridge/devices", "bridge"),
    ("zigbee2mqtt/light-301/set", "command"),
    ("zigbee2mqtt/light-301/get", "command"),
    ("zigbee2mqtt/light-301/set/state", "command"),
    ("stat/plug-7/RESULT", "Tasmota"),
    ("tele/plug-7/SENSOR", "Tasmota"),
    ("stat/plug-7/POWER2", "Tasmota"),
    ("stat/a/b/POWER", "Tasmota"),
    ("shellies/s1/relay/0/power", "Shelly"),
    ("shellies/s1/relay/1", "Shelly"),
    ("shellies/s1/online", "Shelly"),
    ("curtainwatch/door-301/status", "curtainwatch"),
    ("curtainwatch/status", "curtainwatch"),
    ("s2/status/switch:1", "not a sensor topic"),
    ("s2/events/rpc", "not a sensor topic"),
    ("homeassistant/sensor/x/config", "not a sensor topic"),
    ("", "not a sensor topic"),
    ("Zigbee2MQTT/door-301", "not a sensor topic"),
]


@pytest.mark.parametrize(("topic", "why"), IGNORED)
def test_ignored_topics(topic: str, why: str) -> None:
    with pytest.raises(IgnoredTopic) as info:
        parse(topic, b'{"contact": true}')
    assert str(info.value).startswith(f"{topic}: ")
    assert why in str(info.value)


def test_ignored_topic_wins_over_payload_checks() -> None:
    # An unknown topic is not a dead letter, however bad or big its payload.
    with pytest.raises(IgnoredTopic):
        parse("zigbee2mqtt/bridge/logging", b"\xff" * (MAX_PAYLOAD_BYTES + 1))


def test_errors_are_distinct_types() -> None:
    assert issubclass(PayloadError, ValueError)
    assert not issubclass(IgnoredTopic, PayloadError)


def test_numbers_are_floats() -> None:
    readings = parse("zigbee2mqtt/x", b'{"position": 100, "illuminance": 3, "battery": 87}')
    assert [type(reading.value) for reading in readings] == [float, float, float, bool]
