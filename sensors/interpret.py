"""What a Reading says about the state of a device of a given kind.

Owns the mapping from readings to device states (curtain open/closed, light on/off, help
card help/ok, ...) and the state vocabulary per device kind, EVENT_VALUES. Pure: no I/O.
"""

from __future__ import annotations

import json

from monitor.messages import N_
from sensors.readings import PayloadError, Reading

# The states each device kind can be in (one key per DEVICE_KINDS entry); also the values a
# curtainwatch event may carry.
EVENT_VALUES: dict[str, frozenset[str]] = {
    "curtain": frozenset({"open", "closed"}),
    "door": frozenset({"open", "closed"}),
    "contact": frozenset({"open", "closed"}),
    "light": frozenset({"on", "off"}),
    "help": frozenset({"help", "ok"}),
    "motion": frozenset({"active", "idle"}),
    "power": frozenset({"on", "off"}),
    "water": frozenset({"on", "off"}),
}

# Spellings publishers use that mean one of EVENT_VALUES.
_ALIASES = {"close": "closed"}

CURTAIN_OPEN_POSITION = 20.0

_StateMap = dict[bool | str, str]

_OPEN_CLOSED: _StateMap = {True: "closed", False: "open"}  # reed switch: contact = closed
_DOOR_STATES: _StateMap = {"OPEN": "open", "CLOSE": "closed", "ON": "open", "OFF": "closed"}
_ON_OFF: _StateMap = {"ON": "on", "OFF": "off"}

# (device kind, reading kind) -> reading value -> state. Pairs not listed say nothing.
_MAPS: dict[tuple[str, str], _StateMap] = {
    ("curtain", "contact"): _OPEN_CLOSED,
    ("curtain", "state"): {"OPEN": "open", "CLOSE": "closed"},
    ("door", "contact"): _OPEN_CLOSED,
    ("door", "state"): _DOOR_STATES,
    ("contact", "contact"): _OPEN_CLOSED,
    ("contact", "state"): _DOOR_STATES,
    ("light", "state"): _ON_OFF,
    # A help card is a reed switch that opens when flipped, or a button.
    ("help", "contact"): {True: "ok", False: "help"},
    ("help", "state"): {"ON": "help", "OFF": "ok"},
    ("help", "occupancy"): {True: "help", False: "ok"},
    ("motion", "occupancy"): {True: "active", False: "idle"},
    ("motion", "state"): {"ON": "active", "OFF": "idle"},
    # Pressure mats are reed switches that open under weight.
    ("motion", "contact"): {True: "idle", False: "active"},
    ("power", "state"): _ON_OFF,
    ("water", "state"): _ON_OFF,
}


def interpret(device_kind: str, reading: Reading, light_threshold: float = 30.0) -> str | None:
    """The state `reading` implies for a device of `device_kind`, or None when it says
    nothing about state. Raises PayloadError for an unknown kind or a bad event."""
    if device_kind not in EVENT_VALUES:
        raise PayloadError.on(
            reading.device_id,
            PayloadError(N_("unknown device kind %(kind)s"), kind=json.dumps(device_kind)),
        )
    if reading.kind == "event":
        return _event(device_kind, reading)
    if reading.kind == "action":
        return "help" if device_kind == "help" else None
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _MAPS.get((device_kind, reading.kind), {}).get(value)
    if (device_kind, reading.kind) == ("curtain", "position"):
        return "open" if value >= CURTAIN_OPEN_POSITION else "closed"
    if (device_kind, reading.kind) == ("light", "illuminance"):
        return "on" if value >= light_threshold else "off"
    return None


def _event(device_kind: str, reading: Reading) -> str:
    where = f"curtainwatch/{reading.device_id}/event"
    if reading.device_kind is not None and reading.device_kind != device_kind:
        raise PayloadError.on(
            where,
            PayloadError(
                N_("kind %(kind)s does not match registered kind %(registered)s"),
                kind=json.dumps(reading.device_kind),
                registered=json.dumps(device_kind),
            ),
        )
    accepted = EVENT_VALUES[device_kind]
    value = reading.value
    if isinstance(value, str) and _ALIASES.get(value, value) in accepted:
        return _ALIASES.get(value, value)
    raise PayloadError.on(
        where,
        PayloadError(
            N_("value %(value)s is not one of %(choices)s for a %(kind)s"),
            value=json.dumps(value),
            choices=", ".join(sorted(accepted)),
            kind=device_kind,
        ),
    )
