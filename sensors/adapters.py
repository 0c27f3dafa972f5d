"""Payload adapters: turn one MQTT message (topic, payload bytes) into Readings.

Owns the topic families of docs/contracts.md, "MQTT topics and payloads" (zigbee2mqtt, Tasmota,
Shelly Gen1/Gen2, curtainwatch's own event topic) and what their payloads mean. Pure: no I/O,
no clock.
`parse` raises only PayloadError (known family, bad payload) or IgnoredTopic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from json.scanner import make_scanner

from monitor.messages import N_, Message
from sensors.readings import DEVICE_KINDS, IgnoredTopic, PayloadError, Reading

MAX_PAYLOAD_BYTES = 64 * 1024

Decoder = Callable[[str, bytes], list[Reading]]


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Readings in `payload` published on `topic`; see docs/contracts.md, "MQTT topics and
    payloads"."""
    decode, device = _route(topic)
    if not device:
        raise PayloadError.on(topic, PayloadError(N_("empty device id")))
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError.on(
            topic, PayloadError(N_("payload too large: %(n)s bytes"), n=len(payload))
        )
    try:
        return decode(device, payload)
    except PayloadError as e:
        # Decoders give the bare reason; the dead-letter row needs to say where it came from.
        raise PayloadError.on(topic, e) from None


def _route(topic: str) -> tuple[Decoder, str]:
    """The decoder for `topic` and the device id it names."""
    head, _, rest = topic.partition("/")
    parts = topic.split("/")
    if head == "zigbee2mqtt":
        if rest == "bridge" or rest.startswith("bridge/"):
            raise IgnoredTopic(f"{topic}: zigbee2mqtt bridge topic")
        # Friendly names may contain "/", so only the ends of the topic are structure.
        if rest.endswith(("/set", "/get")) or "/set/" in rest or "/get/" in rest:
            raise IgnoredTopic(f"{topic}: zigbee2mqtt command topic")
        if rest.endswith("/availability"):
            return _z2m_availability, rest.removesuffix("/availability")
        return _z2m_state, rest
    if head in ("stat", "tele"):
        if len(parts) == 3 and head == "stat" and parts[2] in ("POWER", "POWER1"):
            return _tasmota_power, parts[1]
        if len(parts) == 3 and head == "tele" and parts[2] == "STATE":
            return _tasmota_state, parts[1]
        if len(parts) == 3 and head == "tele" and parts[2] == "LWT":
            return _tasmota_lwt, parts[1]
        raise IgnoredTopic(f"{topic}: Tasmota topic curtainwatch does not use")
    if head == "shellies":
        if len(parts) == 4 and parts[2:] == ["relay", "0"]:
            return _shelly_relay, parts[1]
        raise IgnoredTopic(f"{topic}: Shelly topic curtainwatch does not use")
    if head == "curtainwatch":
        if len(parts) == 3 and parts[2] == "event":
            return _curtainwatch_event, parts[1]
        raise IgnoredTopic(f"{topic}: curtainwatch topic that carries no readings")
    if len(parts) == 3 and parts[1:] == ["status", "switch:0"]:
        return _shelly_gen2_switch, parts[0]
    raise IgnoredTopic(f"{topic}: not a sensor topic curtainwatch understands")


# --- zigbee2mqtt -----------------------------------------------------------------------


def _z2m_state(device: str, payload: bytes) -> list[Reading]:
    obj = _object(payload)
    readings: list[Reading] = []
    for field, check in _Z2M_FIELDS:
        raw = obj.get(field)
        # z2m publishes null for attributes the device has not reported yet
        # (e.g. "battery": null next to a real "occupancy"): no reading, not an error.
        if raw is None:
            continue
        value = check(field, raw)
        if value is not None:
            readings.append(Reading(device, field, value))
    # Any valid message proves the device is alive, even a bare linkquality heartbeat.
    readings.append(Reading(device, "seen", True))
    return readings


def _z2m_availability(device: str, payload: bytes) -> list[Reading]:
    text = _text(payload)
    if text.strip().lower() in ("online", "offline"):  # legacy plain form
        return [Reading(device, "availability", _online(text))]
    try:
        value = _load(text)
    except PayloadError:
        value = text  # neither form: show what came
    if isinstance(value, dict) and "state" in value:
        return [Reading(device, "availability", _online(value["state"]))]
    raise PayloadError(
        N_(
            'availability must be {"state": "online"|"offline"} or plain online/offline, '
            "got %(value)s"
        ),
        value=_show(value),
    )


def _boolean(field: str, raw: object) -> bool:
    if not isinstance(raw, bool):
        raise PayloadError(
            N_('"%(field)s" must be true or false, got %(value)s'), field=field, value=_show(raw)
        )
    return raw


def _number(field: str, raw: object) -> float:
    # bool is an int subclass in Python, but true is not a position.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError(
            N_('"%(field)s" must be a number, got %(value)s'), field=field, value=_show(raw)
        )
    try:
        number = float(raw)
    except OverflowError:  # an integer too big for a float
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError(
            N_('"%(field)s" must be a finite number, got %(value)s'), field=field, value=_show(raw)
        )
    return number


def _percent(field: str, raw: object) -> float:
    number = _number(field, raw)
    if not 0 <= number <= 100:
        raise PayloadError(
            N_('"%(field)s" must be between 0 and 100, got %(value)s'),
            field=field,
            value=_show(raw),
        )
    return number


def _lux(field: str, raw: object) -> float:
    number = _number(field, raw)
    if number < 0:
        raise PayloadError(
            N_('"%(field)s" must not be negative, got %(value)s'), field=field, value=_show(raw)
        )
    return number


_STATES = ("ON", "OFF", "OPEN", "CLOSE", "STOP")


def _state(field: str, raw: object) -> str:
    if not isinstance(raw, str) or raw.upper() not in _STATES:
        raise PayloadError(
            N_('"%(field)s" must be one of %(choices)s, got %(value)s'),
            field=field,
            choices=", ".join(_STATES),
            value=_show(raw),
        )
    return raw.upper()


def _action(field: str, raw: object) -> str | None:
    if not isinstance(raw, str):
        raise PayloadError(
            N_('"%(field)s" must be a string, got %(value)s'), field=field, value=_show(raw)
        )
    # z2m clears "action" with "" after the press: not a new press.
    return raw or None


# In the order the readings are produced.
_Z2M_FIELDS: tuple[tuple[str, Callable[[str, object], bool | float | str | None]], ...] = (
    ("contact", _boolean),
    ("position", _percent),
    ("state", _state),
    ("illuminance", _lux),
    ("occupancy", _boolean),
    ("action", _action),
    ("battery", _percent),
)


# --- Tasmota ---------------------------------------------------------------------------


def _tasmota_power(device: str, payload: bytes) -> list[Reading]:
    return [Reading(device, "state", _on_off("POWER", _text(payload)))]


def _tasmota_state(device: str, payload: bytes) -> list[Reading]:
    obj = _object(payload)
    field = "POWER" if obj.get("POWER") is not None else "POWER1"
    readings: list[Reading] = []
    if obj.get(field) is not None:
        readings.append(Reading(device, "state", _on_off(field, obj[field])))
    readings.append(Reading(device, "seen", True))
    return readings


def _tasmota_lwt(device: str, payload: bytes) -> list[Reading]:
    return [Reading(device, "availability", _online(_text(payload)))]


def _on_off(field: str, raw: object) -> str:
    if isinstance(raw, str) and raw.strip().upper() in ("ON", "OFF"):
        return raw.strip().upper()
    raise PayloadError(
        N_("%(field)s must be ON or OFF, got %(value)s"), field=field, value=_show(raw)
    )


# --- Shelly ----------------------------------------------------------------------------


def _shelly_relay(device: str, payload: bytes) -> list[Reading]:
    text = _text(payload)
    # "overpower" means the relay tripped itself off.
    states = {"on": "ON", "off": "OFF", "overpower": "OFF"}
    if text.strip().lower() not in states:
        raise PayloadError(
            N_("relay state must be on, off or overpower, got %(value)s"), value=_show(text)
        )
    return [Reading(device, "state", states[text.strip().lower()])]


def _shelly_gen2_switch(device: str, payload: bytes) -> list[Reading]:
    obj = _object(payload)
    if "output" not in obj:
        raise PayloadError(N_('"%(field)s" is missing'), field="output")
    output = _boolean("output", obj["output"])
    return [Reading(device, "state", "ON" if output else "OFF"), Reading(device, "seen", True)]


# --- curtainwatch ----------------------------------------------------------------------


def _curtainwatch_event(device: str, payload: bytes) -> list[Reading]:
    obj = _object(payload)
    for field in ("kind", "value"):
        if field not in obj:
            raise PayloadError(N_('"%(field)s" is missing'), field=field)
    kind, value, ts = obj["kind"], obj["value"], obj.get("ts")
    if not isinstance(kind, str) or kind not in DEVICE_KINDS:
        raise PayloadError(
            N_('"%(field)s" must be one of %(choices)s, got %(value)s'),
            field="kind",
            choices=", ".join(DEVICE_KINDS),
            value=_show(kind),
        )
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(
            N_('"%(field)s" must be a non-empty string, got %(value)s'),
            field="value",
            value=_show(value),
        )
    return [
        Reading(
            device,
            "event",
            value.strip().lower(),
            ts=None if ts is None else _aware_time("ts", ts),
            device_kind=kind,
        )
    ]


def _aware_time(field: str, raw: object) -> datetime:
    try:
        ts = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        ts = None
    # A naive time would be read in whatever zone the server runs in: refuse it.
    if ts is None or ts.utcoffset() is None:
        raise PayloadError(
            N_('"%(field)s" must be an ISO-8601 time with a UTC offset, got %(value)s'),
            field=field,
            value=_show(raw),
        )
    return ts


# --- shared ----------------------------------------------------------------------------


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(N_("payload is not valid UTF-8 (byte %(n)s)"), n=e.start) from None


_JSON = json.JSONDecoder()
# The C scanner under json.loads (typeshed wants a scanner as its context, not a decoder).
_SCAN: Callable[[str, int], tuple[object, int]] = make_scanner(_JSON)  # type: ignore[arg-type]


def _load(text: str) -> object:
    # Most payloads are one value, no whitespace around it: scanned straight away, the same
    # value json.loads gives, without its two whitespace matches per call (~0.5 us).
    try:
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass  # the full decoder below says what is wrong
    try:
        return _JSON.decode(text)
    except RecursionError:
        raise PayloadError(N_("payload is not valid JSON: nested too deeply")) from None
    except ValueError as e:  # JSONDecodeError, and ints over Python's digit limit
        raise PayloadError(N_("payload is not valid JSON: %(error)s"), error=str(e)) from None


def _object(payload: bytes) -> dict[str, object]:
    value = _load(_text(payload))
    if not isinstance(value, dict):
        raise PayloadError(N_("payload must be a JSON object, got %(value)s"), value=_show(value))
    return value


def _online(raw: object) -> bool:
    if isinstance(raw, str) and raw.strip().lower() in ("online", "offline"):
        return raw.strip().lower() == "online"
    raise PayloadError(
        N_("availability must be online or offline, got %(value)s"), value=_show(raw)
    )


def _show(value: object) -> str | Message:
    """`value` as it would appear in JSON, short enough for an error message; an object
    or an array by its name, in the reader's language."""
    if isinstance(value, dict):
        return (N_("an object"), {})
    if isinstance(value, list):
        return (N_("an array"), {})
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
