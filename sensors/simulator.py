"""The sensor simulator: publishes the zigbee2mqtt traffic of a community's curtain, door,
light and help-card sensors, following each resident's day on a (usually accelerated) clock.

Owns the personas (how a simulated resident lives) and the payloads real zigbee2mqtt devices
send: a cover's `position`/`state`, a reed switch's `contact`, a bulb's `state`, plus
`battery`, `voltage` and `linkquality`, with periodic reports that change nothing.

- regular: keeps the routines the community agreed with them (the windows in the
  community file): opens the curtain at a time of their own inside its window, goes out,
  puts the light on at dusk, draws the curtain, goes to bed; every day a little different;
- sleeper: sleeps in on the first day (the curtain opens after its window: a missed
  routine, then a late check-in) and now and then after that;
- help: flips the help card on the first morning, turns it back about an hour later;
- battery: one sensor (the curtain's) whose battery runs down until it falls silent;
- inactive: stops all activity (the sensors still report, nothing changes);
- a resident with `away` dates in the community file leaves on the first morning and
  comes back on the last evening.

Deterministic: what happens when (`plan_day`) depends only on the seed, the community and
the date, never on how fast the clock runs or when messages get published. Decides nothing
about alerts; it only plays the sensors."""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

from monitor.clock import Clock
from monitor.importing.community import CommunitySpec, ResidentSpec

log = logging.getLogger(__name__)

PERSONAS = ("regular", "sleeper", "help", "battery", "inactive")
BATTERY_KINDS = ("curtain", "door", "help")  # the light is a mains bulb
MAX_INFLIGHT = 200  # unacknowledged QoS 1 publishes (paho refuses past 65,535)
DEAD_BATTERY = 3.0
# The battery persona's curtain: from this level at the start, losing this much per hour.
DRAIN_FROM, DRAIN_PER_HOUR = 17.0, 1.0

Change = tuple[tuple[str, Any], ...]
# What each kind of sensor reports before anything happens: shut, off, the card at "ok".
INITIAL_STATE: dict[str, dict[str, Any]] = {
    "curtain": {"position": 0, "state": "CLOSE"},
    "door": {"contact": True},
    "light": {"state": "OFF", "brightness": 0},
    "help": {"contact": True},
}
# Windows for residents whose community file does not set one (minutes after midnight).
DEFAULT_WINDOWS = {
    "curtain_open": (7 * 60.0, 9 * 60.0, 15.0),
    "curtain_close": (18 * 60.0, 22 * 60 + 30.0, 0.0),
    "light_on": (17 * 60 + 30.0, 21 * 60.0, 0.0),
}


@dataclass(frozen=True)
class Step:
    """One thing a sensor reports: `change` (the fields that change) or None, a periodic
    report of its unchanged state. `note` is set for moments worth telling a visitor."""

    at: datetime
    device_id: str
    change: Change | None = None
    note: str = ""


@dataclass
class _Resident:
    spec: ResidentSpec
    persona: str
    zone: ZoneInfo
    devices: dict[str, str]  # kind -> device id (the first of each kind)
    # When they usually open the curtain, in minutes after its window opens.
    habit: float
    # Window routines: kind -> (start, end, grace), in minutes after local midnight.
    windows: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    away: list[tuple[date, date]] = field(default_factory=list)


class Simulator:
    """`start()` connects, reports every sensor's state and availability, then publishes each
    step as the clock reaches it, in a thread of its own; `stop()` ends it. Tests drive it
    by hand instead: `start(run=False)`, then `step(now)` at the times they choose."""

    def __init__(
        self,
        community: CommunitySpec,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        personas: dict[str, str] | None = None,
        seed: int = 1,
        start: datetime | None = None,
        client_id: str = "curtainwatch-simulator",
        tick: float = 0.05,
    ) -> None:
        """`start` is the first simulated moment, which personas' "first day" is counted
        from (default: the clock's time at `start()`)."""
        personas = personas or {}
        unknown = {p for p in personas.values() if p not in PERSONAS}
        if unknown:
            raise ValueError(f"unknown personas {sorted(unknown)} (known: {', '.join(PERSONAS)})")
        self.clock = clock
        self.host, self.port = host, port
        self.seed = seed
        self.tick = tick
        self.residents: dict[str, _Resident] = {}
        for r in community.residents:
            rng = random.Random(f"{seed}:{r.id}:habits")
            persona = personas.get(r.id, "regular")
            devices: dict[str, str] = {}
            for d in r.devices:
                devices.setdefault(d.kind, d.id)
            windows = dict(DEFAULT_WINDOWS)
            for x in reversed(r.routines):  # the first window of each kind wins
                if x.start is not None and x.end is not None:
                    opens, closes = _minutes(x.start), _minutes(x.end)
                    closes += 24 * 60 if closes <= opens else 0  # past midnight
                    windows[x.kind] = (opens, closes, x.grace.total_seconds() / 60)
            habit = 45.0 if persona == "sleeper" else rng.uniform(10, 70)
            self.residents[r.id] = _Resident(
                r, persona, ZoneInfo(r.timezone), devices, habit, windows, list(r.away)
            )
        self.owner = {d: rid for rid, res in self.residents.items() for d in res.devices.values()}
        self.kind = {d: kind for res in self.residents.values() for kind, d in res.devices.items()}
        self.published = 0
        self._state: dict[str, dict[str, Any]] = {}
        self._battery0: dict[str, float] = {}
        self._queue: list[tuple[datetime, int, Step]] = []
        self._seq = 0  # ties in the queue go in the order steps were planned
        self._planned: dict[str, date] = {}  # resident -> last local date planned
        self._started_at = start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._inflight = 0
        self._connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,  # what every broker speaks, the embedded one included
        )
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- the plan ----------------------------------------------------------------------

    def plan_day(self, resident_id: str, day: date) -> list[Step]:
        """Everything `resident_id`'s sensors report on local date `day`, in time order."""
        r = self.residents[resident_id]
        rng = random.Random(f"{self.seed}:{resident_id}:{day.isoformat()}")
        steps: list[Step] = []
        dev = r.devices
        # Periodic reports first, drawn the same way whatever the persona does.
        for kind in ("curtain", "door", "light", "help"):
            if kind in dev:
                minute = rng.uniform(0, 60)
                while minute < 24 * 60:
                    steps.append(Step(_at(r, day, minute), dev[kind]))
                    minute += rng.uniform(45, 75)

        def add(minute: float, kind: str, note: str = "", **change: Any) -> None:
            if kind in dev and 0 <= minute < 24 * 60:
                steps.append(Step(_at(r, day, minute), dev[kind], tuple(change.items()), note))

        def door_out(minute: float, back_after: float, note: str = "") -> None:
            add(minute, "door", note, contact=False)
            add(minute + rng.uniform(0.3, 1.0), "door", contact=True)
            add(minute + back_after, "door", contact=False)
            add(minute + back_after + rng.uniform(0.3, 1.0), "door", contact=True)

        name = r.spec.name
        first_day = self._started_at is not None and day == self._local_day(r, self._started_at)
        away_today = [(a, b) for a, b in r.away if a <= day <= b]
        leaving = any(a == day for a, _ in away_today)
        returning = any(b == day for _, b in away_today)
        if r.persona == "inactive" or (away_today and not leaving and not returning):
            return _in_order(steps)  # nobody home, or nobody moving: reports only

        if not away_today or leaving:
            # The morning.
            start, end, grace = r.windows["curtain_open"]
            # Inside the window with a margin, even on an odd day.
            opens = start + max(3.0, min(end - start - 10, r.habit + rng.gauss(0, 12)))
            late = r.persona == "sleeper" and (first_day or rng.random() < 0.3)
            if late:  # after the check at the window's end (+ grace)
                opens = end + grace + rng.uniform(5, 30)
            wake = opens - rng.uniform(3, 20)
            if wake < 7 * 60:  # still dark in winter
                add(wake + 1, "light", state="ON", brightness=rng.randint(120, 254))
            position = rng.choice((100, 100, 100, 80, 60))
            note = f"{name} slept in: the curtain opens late" if late else ""
            add(opens, "curtain", note, position=position, state="OPEN")
            if wake < 7 * 60:
                add(opens + rng.uniform(1, 5), "light", state="OFF")
            if r.persona == "help" and (first_day or rng.random() < 0.1):
                flip = rng.uniform(8 * 60, 8 * 60 + 15) if first_day else rng.uniform(600, 960)
                add(flip, "help", f"{name} flips the help card", contact=False)
                add(flip + rng.uniform(50, 80), "help", f"{name} turns the card back", contact=True)
            if leaving:
                gone = rng.uniform(9 * 60 + 30, 10 * 60 + 30)
                add(gone, "door", f"{name} leaves for a few days", contact=False)
                add(gone + rng.uniform(0.3, 1.0), "door", contact=True)
                return _in_order(steps)
            went_out = False
            if rng.random() < 0.75:  # the morning market, once up
                door_out(max(opens + 10, rng.uniform(8 * 60, 10 * 60 + 30)), rng.uniform(40, 150))
                went_out = True
            if rng.random() < 0.4:
                door_out(rng.uniform(14 * 60 + 30, 16 * 60 + 30), rng.uniform(30, 90))
                went_out = True
            if not went_out:  # the rubbish, the post: the door opens at least once a day
                door_out(max(opens + 10, rng.uniform(9 * 60, 11 * 60)), rng.uniform(2, 5))
        else:
            # Coming home on the last day away.
            home = rng.uniform(17 * 60, 18 * 60 + 30)
            add(home, "door", f"{name} is back home", contact=False)
            add(home + rng.uniform(0.3, 1.0), "door", contact=True)

        # The evening.
        light_start, _, _ = r.windows["light_on"]
        lit = light_start + rng.uniform(5, 75)
        add(lit, "light", state="ON", brightness=rng.randint(120, 254))
        close_start, close_end, _ = r.windows["curtain_close"]
        first = max(close_start + 5, lit + 10)
        add(
            rng.uniform(first, max(first, min(close_end - 10, close_start + 165))),
            "curtain",
            position=0,
            state="CLOSE",
        )
        add(rng.uniform(21 * 60 + 15, 22 * 60 + 40), "light", state="OFF")
        return _in_order(steps)

    # -- running -----------------------------------------------------------------------

    def start(self, run: bool = True, timeout: float = 10.0) -> None:
        """Connect, report every sensor as it is now, and (with `run`) keep publishing."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise TimeoutError(f"the simulator could not reach MQTT {self.host}:{self.port}")
        self.boot(self.clock.now())
        if run:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="curtainwatch-simulator", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop publishing; what is in flight is delivered (up to `timeout`) before leaving."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.wait_acknowledged(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def boot(self, now: datetime) -> int:
        """Report every device online with its state at `now`, as zigbee2mqtt does when it
        starts; later steps of today are queued."""
        self._started_at = self._started_at or now
        sent = 0
        for rid, r in self.residents.items():
            today = self._local_day(r, now)
            for did in r.devices.values():
                self._state[did] = self._initial_state(did)
            for s in self.plan_day(rid, today - timedelta(days=1)) + self.plan_day(rid, today):
                if s.at <= now:
                    self._apply(s)
                else:
                    self._push(s)
            self._planned[rid] = today
            for did in r.devices.values():
                if self._dead(did, now):
                    continue
                self._publish(f"zigbee2mqtt/{did}/availability", {"state": "online"})
                self._publish(f"zigbee2mqtt/{did}", self._payload(did, now))
                sent += 2
        return sent

    def step(self, now: datetime) -> int:
        """Publish every step due by `now`; returns how many messages went out."""
        for rid, r in self.residents.items():
            while self._planned[rid] < self._local_day(r, now) + timedelta(days=1):
                self._planned[rid] += timedelta(days=1)
                for s in self.plan_day(rid, self._planned[rid]):
                    self._push(s)
        sent = 0
        while self._queue and self._queue[0][0] <= now and not self._stop.is_set():
            s = heapq.heappop(self._queue)[2]
            if self._dead(s.device_id, s.at):
                continue  # a flat battery says nothing more
            self._apply(s)
            if s.note:
                r = self.residents[self.owner[s.device_id]]
                log.info("[%s] %s", s.at.astimezone(r.zone).strftime("%a %H:%M"), s.note)
            self._publish(f"zigbee2mqtt/{s.device_id}", self._payload(s.device_id, s.at))
            sent += 1
        return sent

    def _push(self, s: Step) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (s.at, self._seq, s))

    def wait_acknowledged(self, timeout: float = 10.0) -> bool:
        """Wait until the broker has acknowledged every message published so far."""
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight == 0, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(self.clock.now())
            except Exception:
                log.exception("the simulator failed a step; carrying on")
            self._stop.wait(self.tick)

    # -- devices -----------------------------------------------------------------------

    def battery(self, device_id: str, at: datetime) -> float | None:
        """The battery level a device reports at `at` (None: mains powered)."""
        if self.kind[device_id] not in BATTERY_KINDS:
            return None
        r = self.residents[self.owner[device_id]]
        if r.persona == "battery" and self.kind[device_id] == "curtain":
            start = self._started_at or at
            hours = max(0.0, (at - start).total_seconds() / 3600)
            return max(0.0, round(DRAIN_FROM - DRAIN_PER_HOUR * hours, 1))
        if device_id not in self._battery0:
            self._battery0[device_id] = float(
                random.Random(f"{self.seed}:{device_id}:battery").randint(55, 100)
            )
        return self._battery0[device_id]

    def _dead(self, device_id: str, at: datetime) -> bool:
        level = self.battery(device_id, at)
        return level is not None and level < DEAD_BATTERY

    def _initial_state(self, device_id: str) -> dict[str, Any]:
        return dict(INITIAL_STATE.get(self.kind[device_id], {}))

    def _apply(self, s: Step) -> None:
        if s.change:
            self._state[s.device_id].update(s.change)

    def _payload(self, device_id: str, at: datetime) -> dict[str, Any]:
        """The whole state, as zigbee2mqtt publishes it on every report."""
        payload = dict(self._state[device_id])
        level = self.battery(device_id, at)
        if level is not None:
            payload["battery"] = int(level) if level == int(level) else level
            payload["voltage"] = int(2700 + 3.0 * level)
        rng = random.Random(f"{self.seed}:{device_id}:{at.isoformat()}")
        payload["linkquality"] = rng.randint(40, 200)
        return payload

    def _local_day(self, r: _Resident, moment: datetime) -> date:
        return moment.astimezone(r.zone).date()

    # -- MQTT --------------------------------------------------------------------------

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        with self._cond:
            # Cap what is unacknowledged; wait for the broker rather than queue without end.
            while self._inflight >= MAX_INFLIGHT and not self._stop.is_set():
                self._cond.wait(0.5)
            self._inflight += 1
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # NO_CONN: paho keeps a QoS 1 message and sends it on reconnect.
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()
            log.warning("simulator could not publish to %s: %s", topic, mqtt.error_string(info.rc))
            return
        self.published += 1

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("simulator: the MQTT broker refused the connection: %s", reason)
            return
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if reason.is_failure and not self._stop.is_set():
            log.warning("simulator lost the MQTT broker (%s); reconnecting", reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()


def _at(r: _Resident, day: date, minute: float) -> datetime:
    """Local wall time `minute` minutes into `day` (to the second), as a UTC instant.
    Adding to an aware datetime moves its wall time, so 07:30 stays 07:30 on a DST day."""
    wall = datetime.combine(day, time(0), tzinfo=r.zone) + timedelta(seconds=round(minute * 60))
    return wall.astimezone(UTC)


def _minutes(t: time) -> float:
    return t.hour * 60.0 + t.minute


def _in_order(steps: list[Step]) -> list[Step]:
    return sorted(steps, key=lambda s: s.at)  # stable: same-second steps keep their order
