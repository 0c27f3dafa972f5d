"""Table-driven tests for sensors.interpret: reading -> device state, per device kind."""

from __future__ import annotations

import pytest

from sensors.adapters import parse
from sensors.interpret import EVENT_VALUES, interpret
from sensors.readings import DEVICE_KINDS, PayloadError, Reading


def r(kind: str, value: bool | float | str) -> Reading:
    return Reading("dev-1", kind, value)


STATES = [
    # curtain
    ("curtain", r("position", 100.0), "open"),
    ("curtain", r("position", 20.0), "open"),
    ("curtain", r("position", 19.9), "closed"),
    ("curtain", r("position", 0.0), "closed"),
    ("curtain", r("state", "OPEN"), "open"),
    ("curtain", r("state", "CLOSE"), "closed"),
    ("curtain", r("state", "STOP"), None),
    ("curtain", r("state", "ON"), None),
    ("curtain", r("contact", True), "closed"),
    ("curtain", r("contact", False), "open"),
    ("curtain", r("illuminance", 500.0), None),
    # door and contact
    ("door", r("contact", True), "closed"),
    ("door", r("contact", False), "open"),
    ("door", r("state", "OPEN"), "open"),
    ("door", r("state", "CLOSE"), "closed"),
    ("door", r("state", "ON"), "open"),
    ("door", r("state", "OFF"), "closed"),
    ("door", r("state", "STOP"), None),
    ("door", r("position", 100.0), None),
    ("door", r("occupancy", True), None),
    ("contact", r("contact", True), "closed"),
    ("contact", r("contact", False), "open"),
    ("contact", r("state", "OPEN"), "open"),
    ("contact", r("state", "CLOSE"), "closed"),
    ("contact", r("state", "ON"), "open"),
    ("contact", r("state", "OFF"), "closed"),
    # light
    ("light", r("state", "ON"), "on"),
    ("light", r("state", "OFF"), "off"),
    ("light", r("illuminance", 30.0), "on"),
    ("light", r("illuminance", 29.9), "off"),
    ("light", r("illuminance", 0.0), "off"),
    ("light", r("contact", True), None),
    ("light", r("action", "single"), None),
    # help card or button
    ("help", r("action", "single"), "help"),
    ("help", r("action", "long_press"), "help"),
    ("help", r("contact", False), "help"),
    ("help", r("contact", True), "ok"),
    ("help", r("state", "ON"), "help"),
    ("help", r("state", "OFF"), "ok"),
    ("help", r("occupancy", True), "help"),
    ("help", r("occupancy", False), "ok"),
    ("help", r("state", "OPEN"), None),
    # motion: PIR, bed and seat mats
    ("motion", r("occupancy", True), "active"),
    ("motion", r("occupancy", False), "idle"),
    ("motion", r("state", "ON"), "active"),
    ("motion", r("state", "OFF"), "idle"),
    ("motion", r("contact", False), "active"),
    ("motion", r("contact", True), "idle"),
    ("motion", r("illuminance", 100.0), None),
    # power and water
    ("power", r("state", "ON"), "on"),
    ("power", r("state", "OFF"), "off"),
    ("power", r("occupancy", True), None),
    ("power", r("contact", False), None),
    ("water", r("state", "ON"), "on"),
    ("water", r("state", "OFF"), "off"),
    ("water", r("occupancy", True), None),
    ("water", r("contact", True), None),
]


@pytest.mark.parametrize(("device_kind", "reading", "expected"), STATES)
def test_interpret(device_kind: str, reading: Reading, expected: str | None) -> None:
    assert interpret(device_kind, reading) == expected


NOISE = [r("battery", 90.0), r("seen", True), r("availability", False), r("availability", True)]


@pytest.mark.parametrize("device_kind", DEVICE_KINDS)
@pytest.mark.parametrize("reading", NOISE)
def test_noise_says_nothing_about_state(device_kind: str, reading: Reading) -> None:
    assert interpret(device_kind, reading) is None


def test_light_threshold_is_per_device() -> None:
    dim = r("illuminance", 12.0)
    assert interpret("light", dim) == "off"
    assert interpret("light", dim, light_threshold=10.0) == "on"
    assert interpret("light", dim, light_threshold=12.0) == "on"


def test_event_values_cover_every_device_kind() -> None:
    assert set(EVENT_VALUES) == set(DEVICE_KINDS)
    assert EVENT_VALUES["curtain"] == {"open", "closed"}
    assert EVENT_VALUES["help"] == {"help", "ok"}
    assert EVENT_VALUES["motion"] == {"active", "idle"}


def test_every_state_interpret_returns_is_an_event_value() -> None:
    # So the rules engine can match live readings and curtainwatch events alike.
    for device_kind, reading, expected in STATES:
        if expected is not None:
            assert expected in EVENT_VALUES[device_kind], (device_kind, reading)


def event(value: str, device_kind: str | None = None) -> Reading:
    return Reading("dev-1", "event", value, device_kind=device_kind)


@pytest.mark.parametrize(
    ("device_kind", "value"),
    [(kind, value) for kind, values in EVENT_VALUES.items() for value in sorted(values)],
)
def test_accepted_event_values_pass_through(device_kind: str, value: str) -> None:
    assert interpret(device_kind, event(value, device_kind)) == value
    # Readings built without a claimed kind are checked on value alone.
    assert interpret(device_kind, event(value)) == value


def test_close_means_closed() -> None:
    assert interpret("curtain", event("close", "curtain")) == "closed"


def test_event_from_the_topic_end_to_end() -> None:
    [reading] = parse("curtainwatch/curtain-301/event", b'{"kind": "curtain", "value": "Close"}')
    assert interpret("curtain", reading) == "closed"


EVENT_ERRORS = [
    (
        "door",
        Reading("door-301", "event", "open", device_kind="curtain"),
        'curtainwatch/door-301/event: kind "curtain" does not match registered kind "door"',
    ),
    (
        "curtain",
        Reading("curtain-301", "event", "on", device_kind="curtain"),
        'curtainwatch/curtain-301/event: value "on" is not one of closed, open for a curtain',
    ),
    (
        "light",
        Reading("light-301", "event", "close", device_kind="light"),
        'curtainwatch/light-301/event: value "close" is not one of off, on for a light',
    ),
    (
        "help",
        Reading("card-301", "event", "pressed", device_kind="help"),
        'curtainwatch/card-301/event: value "pressed" is not one of help, ok for a help',
    ),
]


@pytest.mark.parametrize(("device_kind", "reading", "message"), EVENT_ERRORS)
def test_bad_events(device_kind: str, reading: Reading, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        interpret(device_kind, reading)
    assert str(info.value) == message


@pytest.mark.parametrize("reading", [r("contact", True), event("open")])
def test_unknown_device_kind(reading: Reading) -> None:
    with pytest.raises(PayloadError) as info:
        interpret("lamp", reading)
    assert str(info.value) == 'dev-1: unknown device kind "lamp"'
