"""The sensor simulator (sensors/simulator.py) against a real Mosquitto and a started
Runtime, on a simulated clock the test moves in five-minute steps: the demo community's
personas produce the readings and alerts they are meant to. Plus its determinism, and the
accelerated clock (monitor/clock.py) it runs on in the demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from support.mqtt import Collector, StartBroker, wait_for
from support.watch import alerts, events, settlements
from support.world import World, at, on_broker

from curtainwatch.demo import AWAY, PERSONAS, community_yaml, weekend_of
from curtainwatch.runtime import Runtime
from monitor.clock import AcceleratedClock, SimulatedClock
from monitor.importing.load import load_community
from monitor.models import Device
from sensors.simulator import DRAIN_FROM, Simulator

SUNDAY = "2026-11-29"  # the demo's away resident is away this weekend (Sat 28 - Sun 29)
SEED = 2026
pytestmark = pytest.mark.broker


def demo_text(day: str = SUNDAY) -> str:
    return community_yaml(date.fromisoformat(day), lambda pid: f"json://127.0.0.1:9/{pid}")


def simulator(clock: Any, port: int = 1883, seed: int = SEED, **kw: Any) -> Simulator:
    spec = load_community(demo_text())
    return Simulator(spec, clock, "127.0.0.1", port, personas=PERSONAS, seed=seed, **kw)


# -- the plan: deterministic, and what each persona does -------------------------------


def test_same_seed_same_days_and_another_seed_other_days() -> None:
    start = at("05:30", SUNDAY)
    a, b = (simulator(SimulatedClock(start), start=start) for _ in range(2))
    c = simulator(SimulatedClock(start), seed=SEED + 1, start=start)
    days = [date.fromisoformat(SUNDAY) + timedelta(days=n) for n in range(3)]
    plan_a = [a.plan_day(rid, d) for rid in a.residents for d in days]
    assert plan_a == [b.plan_day(rid, d) for rid in b.residents for d in days]
    assert plan_a != [c.plan_day(rid, d) for rid in c.residents for d in days]
    # A plan does not depend on what was asked before it.
    assert a.plan_day("r-301", days[1]) == simulator(SimulatedClock(start), start=start).plan_day(
        "r-301", days[1]
    )


def _opens(sim: Simulator, rid: str, day: date) -> list[datetime]:
    curtain = sim.residents[rid].devices["curtain"]
    return [
        s.at
        for s in sim.plan_day(rid, day)
        if s.device_id == curtain and s.change and dict(s.change).get("position", 0) > 0
    ]


def test_personas_in_the_plan() -> None:
    start = at("05:30", SUNDAY)
    sim = simulator(SimulatedClock(start), start=start)
    sunday, monday = date(2026, 11, 29), date(2026, 11, 30)
    # Regulars open the curtain inside their window, every day.
    for rid, r in sim.residents.items():
        if r.persona != "regular" or rid == AWAY:
            continue
        begin, end, _ = r.windows["curtain_open"]
        for day in (sunday, monday):
            [opened] = _opens(sim, rid, day)
            minute = (opened - at("00:00", day.isoformat())).total_seconds() / 60
            assert begin < minute < end, (rid, day, opened)
    # The sleepers open after the 09:15 check on the first day.
    for rid in ("r-303", "r-502"):
        [opened] = _opens(sim, rid, sunday)
        assert opened > at("09:15", SUNDAY), rid
    # The inactive resident never opens it; the away resident is out all Sunday morning.
    assert _opens(sim, "r-510", sunday) == [] and _opens(sim, "r-510", monday) == []
    assert weekend_of(sunday) == (date(2026, 11, 28), sunday)
    assert _opens(sim, AWAY, sunday) == [] and len(_opens(sim, AWAY, monday)) == 1
    # The help card flips on the first morning only (here), and back about an hour later.
    card = sim.residents["r-301"].devices["help"]
    flips = [
        (s.at, dict(s.change))
        for s in sim.plan_day("r-301", sunday)
        if s.device_id == card and s.change
    ]
    assert [c["contact"] for _, c in flips] == [False, True]
    assert at("08:00", SUNDAY) <= flips[0][0] <= at("08:15", SUNDAY)
    assert timedelta(minutes=50) <= flips[1][0] - flips[0][0] <= timedelta(minutes=80)
    # The battery runs down from 17% and the sensor falls silent below 3%.
    curtain = sim.residents["r-306"].devices["curtain"]
    assert sim.battery(curtain, start) == DRAIN_FROM
    assert sim.battery(curtain, start + timedelta(hours=3)) == DRAIN_FROM - 3
    assert sim.battery(curtain, start + timedelta(hours=15)) == 2.0
    assert sim.battery(sim.residents["r-306"].devices["light"], start) is None  # mains


# -- live: Mosquitto, the real ingestor and engine -------------------------------------


@pytest.fixture
def live(
    db_url: str, start_broker: StartBroker
) -> Iterator[tuple[Runtime, Simulator, SimulatedClock]]:
    broker = start_broker()
    settings = on_broker(broker, "cw-simulator-test")
    world = World(demo_text(), day=SUNDAY, start="05:30", users=False, settings=settings)
    rt = world.runtime(db_url)
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    rt.start(schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10)
    sim = simulator(clock, broker.port)
    sim.start(run=False)
    yield rt, sim, clock
    sim.stop()
    rt.stop()


def advance(rt: Runtime, sim: Simulator, clock: SimulatedClock, until: datetime) -> None:
    """Move simulated time in 5-minute steps, as the demo's clock would, letting every
    reading be stored (stamped with its step's time) before the next step."""
    while True:
        sim.step(clock.now())
        assert sim.wait_acknowledged(10)
        wait_for(lambda: rt.ingestor.stats.messages >= sim.published, 10, message="stored")
        rt.engine.settle_due()
        if clock.now() >= until:
            return
        clock.advance(timedelta(minutes=5))


def test_a_morning_of_personas_over_mqtt(
    live: tuple[Runtime, Simulator, SimulatedClock],
) -> None:
    rt, sim, clock = live
    advance(rt, sim, clock, at("10:30", SUNDAY))
    rt.engine.check_devices()

    opened = {e.resident_id: e.ts for e in events(rt, kind="curtain", value="open")}
    outcomes = {s.resident_id: s.outcome for s in settlements(rt, kind="curtain_open")}
    assert len(outcomes) == 30
    regulars = [
        rid
        for rid, r in sim.residents.items()
        if r.persona in ("regular", "help", "battery") and rid != AWAY
    ]
    assert len(regulars) == 26
    # Most residents: the curtain opened in its window.
    assert all(outcomes[rid] == "satisfied" for rid in regulars), {
        rid: outcomes[rid] for rid in regulars if outcomes[rid] != "satisfied"
    }
    # The sleepers: missed at 09:15, then the late curtain resolves the alert as "late".
    for rid in ("r-303", "r-502"):
        assert outcomes[rid] == "missed"
        assert opened[rid] > at("09:15", SUNDAY)
        [a] = alerts(rt, resident_id=rid, kind="missed_routine")
        assert (a.status, a.outcome) == ("resolved", "late")
    # The inactive resident: missed, still open; the away resident: away, no alert.
    assert outcomes["r-510"] == "missed" and "r-510" not in opened
    [a] = alerts(rt, resident_id="r-510", kind="missed_routine")
    assert a.status == "open"
    assert outcomes[AWAY] == "away" and alerts(rt, resident_id=AWAY) == []
    # The help card: flipped, then back; one help alert from the ingestion path.
    assert [e.value for e in events(rt, resident_id="r-301", kind="help")] == ["ok", "help", "ok"]
    [h] = alerts(rt, kind="help")
    assert (h.resident_id, h.severity, h.device_id) == ("r-301", "critical", "card-301")
    # The battery: low, reported to staff as a device alert.
    [low] = alerts(rt, kind="low_battery")
    assert (low.resident_id, low.device_id) == ("r-306", "curtain-306")
    with rt.sessions() as s:
        battery = s.scalar(select(Device.battery).where(Device.id == "curtain-306"))
    assert battery is not None and 11 <= battery < 15
    # Nothing else was raised, and every payload was understood.
    kinds = sorted(a.kind for a in alerts(rt))
    assert kinds == ["help", "low_battery", "missed_routine", "missed_routine", "missed_routine"]
    assert rt.ingestor.stats.dead_letters == 0 and rt.ingestor.stats.unknown == 0


def test_payloads_are_zigbee2mqtt_and_the_stream_matches_the_plan(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    start = at("07:00", SUNDAY)
    clock = SimulatedClock(start)
    with Collector(broker.host, broker.port, ["zigbee2mqtt/#"], client_id="sim-watch") as seen:
        sim = simulator(clock, broker.port, client_id="sim-payloads")
        sim.start(run=False)
        clock.set(at("08:30", SUNDAY))
        sim.step(clock.now())
        assert sim.wait_acknowledged(10)
        wait_for(lambda: seen.count() >= sim.published, 10)
        sim.stop()
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for m in seen.messages:
        by_topic.setdefault(m.topic, []).append(json.loads(m.payload))
    # Every device came online, then reported its state.
    assert by_topic["zigbee2mqtt/curtain-301/availability"] == [{"state": "online"}]
    curtain = by_topic["zigbee2mqtt/curtain-301"]
    assert curtain[0]["position"] == 0 and curtain[0]["state"] == "CLOSE"
    assert {"battery", "voltage", "linkquality"} <= set(curtain[0])
    assert any(p["position"] >= 60 and p["state"] == "OPEN" for p in curtain[1:])
    assert {"state", "linkquality"} <= set(by_topic["zigbee2mqtt/light-301"][0])
    assert "battery" not in by_topic["zigbee2mqtt/light-301"][0]
    assert by_topic["zigbee2mqtt/card-301"][0]["contact"] is True
    assert any(p["contact"] is False for p in by_topic["zigbee2mqtt/card-301"])
    # Exactly the plan's steps between 07:00 and 08:30 went out (plus the boot reports).
    planned = sum(
        1
        for rid in sim.residents
        for s in sim.plan_day(rid, start.astimezone(sim.residents[rid].zone).date())
        if start < s.at <= at("08:30", SUNDAY)
    )
    devices = sum(len(r.devices) for r in sim.residents.values())
    assert seen.count() == sim.published == 2 * devices + planned


# -- the accelerated clock -------------------------------------------------------------


def test_accelerated_clock_runs_factor_times_real_time() -> None:
    real = [1000.0]
    start = at("05:30", SUNDAY)
    clock = AcceleratedClock(start, 144, timer=lambda: real[0])  # a day in ten minutes
    assert clock.now() == start and clock.now().tzinfo == UTC
    real[0] += 25.0
    assert clock.now() == at("06:30", SUNDAY)
    real[0] += 600.0 - 25.0
    assert clock.now() == start + timedelta(days=1)
    assert clock.real_seconds(timedelta(hours=1)) == 25.0
    with pytest.raises(ValueError):
        AcceleratedClock(start, 0)
    with pytest.raises(ValueError):
        AcceleratedClock(datetime(2026, 11, 29, 5, 30), 144)  # no time zone


def test_a_paused_accelerated_clock_waits_for_resume() -> None:
    real = [50.0]
    clock = AcceleratedClock(at("05:30", SUNDAY), 144, timer=lambda: real[0], paused=True)
    real[0] += 100.0
    assert clock.now() == at("05:30", SUNDAY)
    clock.resume()
    real[0] += 25.0
    assert clock.now() == at("06:30", SUNDAY)
    clock.resume()  # a second resume does not restart it
    assert clock.now() == at("06:30", SUNDAY)


def test_accelerated_clock_moves_forward_on_its_own() -> None:
    clock = AcceleratedClock(at("05:30", SUNDAY), 3600)
    first = clock.now()
    wait_for(lambda: clock.now() >= first + timedelta(seconds=36), 5)
    assert clock.now() >= first
