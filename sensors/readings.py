"""The Reading every adapter produces, the kinds it can have, and the two errors adapters raise.

Owns the vocabulary shared by `sensors.adapters` (payload -> readings) and
`sensors.interpret` (reading -> device state). No I/O here.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from monitor.messages import MessageError, about

READING_KINDS = (
    "contact",
    "position",
    "state",
    "illuminance",
    "occupancy",
    "action",
    "battery",
    "availability",
    "seen",
    "event",
)

# Device kinds a community file may register (docs/contracts.md, "The community file").
DEVICE_KINDS = ("curtain", "door", "light", "help", "motion", "contact", "power", "water")


class Reading(NamedTuple):
    """One fact a payload states about one device. A NamedTuple, not a frozen dataclass: a
    busy drain makes ~2.5 a message, and a tuple takes less than half the time to make."""

    device_id: str
    kind: str  # one of READING_KINDS
    value: bool | float | str
    # Aware time when the payload carries its own (curtainwatch topic); None = use receive time.
    ts: datetime | None = None
    # Only for curtainwatch/<dev>/event: the device kind the payload claims.
    device_kind: str | None = None


class PayloadError(MessageError):
    """Payload on a known topic family that cannot be decoded. Its text is the precise
    reason in English (the dead-letter table's `error`); `what` is the same as a Message,
    for the devices page to say in its reader's language."""

    @classmethod
    def on(cls, where: str, problem: PayloadError) -> PayloadError:
        """`problem`, said to be about `where` (a topic, a device)."""
        msgid, params = about(where, problem.what)
        return cls(msgid, **params)


class IgnoredTopic(Exception):
    """Topic we deliberately do not handle (outside every family, zigbee2mqtt/bridge/...,
    .../set, .../get); the message says why."""
