"""The watching core against a real Mosquitto: readings in over MQTT, windows settled once,
alerts out; and a persistent session that keeps readings while curtainwatch is down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.watch import alerts, events, runtime, settlements
from support.world import BUILDING_3, DAY, at

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock

pytestmark = pytest.mark.broker


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(at("06:00"))


@pytest.fixture
def live(
    db_url: str, broker: MosquittoBroker, clock: SimulatedClock, request: pytest.FixtureRequest
) -> Iterator[Runtime]:
    rt = runtime(db_url, clock, broker.host, broker.port, client_id=f"cw-{request.node.name}")
    rt.import_community(BUILDING_3)
    rt.start(schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10)
    yield rt
    rt.stop()


def send(broker: MosquittoBroker, *messages: tuple[str, object]) -> None:
    publish_many(
        broker.host,
        broker.port,
        [(t, p if isinstance(p, str) else json.dumps(p)) for t, p in messages],
    )


def test_curtain_opened_at_0740_settles_satisfied(
    live: Runtime, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    clock.set(at("07:40"))
    send(broker, ("zigbee2mqtt/curtain-301", {"position": 100, "battery": 97}))
    wait_for(lambda: events(live, device_id="curtain-301"), message="curtain event stored")

    clock.set(at("09:15"))
    assert live.engine.settle_due() >= 1
    [s] = settlements(live, resident_id="r-301", kind="curtain_open")
    assert (s.outcome, s.window_date.isoformat()) == ("satisfied", DAY)
    assert s.due_at == at("09:15")
    assert alerts(live, resident_id="r-301") == []


def test_shut_curtain_raises_exactly_one_missed_alert_at_0915(
    live: Runtime, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    # The sensor is alive (a heartbeat) but the curtain never opens.
    send(broker, ("zigbee2mqtt/curtain-302", {"position": 0, "battery": 90}))
    wait_for(lambda: live.ingestor.stats.messages >= 1)

    clock.set(at("09:14:59"))
    live.engine.settle_due()
    assert alerts(live, resident_id="r-302") == []

    clock.set(at("09:15"))
    live.engine.settle_due()
    live.engine.settle_due()  # a second tick at the same moment settles nothing again
    clock.set(at("09:16"))
    live.engine.settle_due()

    [a] = alerts(live, resident_id="r-302")
    assert (a.kind, a.status, a.severity, a.repeats) == ("missed_routine", "open", "warning", 0)
    assert a.due_at == at("09:15") and a.raised_at == at("09:15")
    [s] = settlements(live, resident_id="r-302")
    assert s.outcome == "missed"


def test_late_curtain_resolves_the_missed_alert_as_late(
    live: Runtime, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    send(broker, ("zigbee2mqtt/curtain-302", {"position": 0, "battery": 90}))
    wait_for(lambda: live.ingestor.stats.messages >= 1)
    clock.set(at("09:15"))
    live.engine.settle_due()
    clock.set(at("09:40"))
    send(broker, ("zigbee2mqtt/curtain-302", {"position": 100}))
    [a] = wait_for(lambda: alerts(live, resident_id="r-302", status="resolved"))
    assert (a.outcome, a.resolved_by, a.resolved_at) == (
        "late",
        "curtainwatch",
        at("09:40"),
    )


def test_help_card_raises_help_alert_from_the_ingestion_path(
    live: Runtime, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    clock.set(at("10:03"))
    sent = time.monotonic()
    send(broker, ("zigbee2mqtt/card-301", {"contact": False}))
    [a] = wait_for(lambda: alerts(live, kind="help"), timeout=10)
    latency = time.monotonic() - sent
    print(f"help card -> help alert stored: {latency * 1000:.0f} ms")
    # No scheduler runs in this test: the alert can only have come from ingestion itself.
    assert live.scheduler is None
    assert (a.resident_id, a.severity, a.status, a.device_id) == (
        "r-301",
        "critical",
        "open",
        "card-301",
    )
    assert a.raised_at == at("10:03")


def test_garbage_between_readings_goes_to_dead_letters(
    live: Runtime, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    from monitor.models import DeadLetter, UnknownDevice

    send(
        broker,
        ("zigbee2mqtt/door-301", {"contact": False}),
        ("zigbee2mqtt/door-301", "{not json"),
        ("zigbee2mqtt/door-301", {"contact": "yes"}),
        ("zigbee2mqtt/mystery-plug", {"state": "ON"}),
        ("zigbee2mqtt/door-301", {"contact": True}),
    )
    wait_for(lambda: live.ingestor.stats.messages >= 5)
    assert [e.value for e in events(live, device_id="door-301")] == ["open", "closed"]
    with live.sessions() as s:
        dead = s.query(DeadLetter).order_by(DeadLetter.id).all()
        unknown = s.get(UnknownDevice, "mystery-plug")
    assert [d.payload for d in dead] == [b"{not json", b'{"contact": "yes"}']
    assert all(d.error.startswith("zigbee2mqtt/door-301") for d in dead), [d.error for d in dead]
    assert unknown is not None and unknown.messages == 1


def test_readings_published_while_down_arrive_after_restart(
    db_url: str, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    rt = runtime(db_url, clock, broker.host, broker.port, client_id="cw-restart")
    rt.import_community(BUILDING_3)
    rt.start(schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10)
    send(
        broker,
        ("zigbee2mqtt/curtain-301", {"position": 0, "battery": 95}),
        ("zigbee2mqtt/curtain-302", {"position": 0, "battery": 95}),
    )
    wait_for(lambda: rt.ingestor.stats.messages >= 2)
    rt.stop()

    # While curtainwatch is down: r-301 opens at 07:40 (a plain zigbee2mqtt reading),
    # r-302 opens at 07:50 (curtainwatch's own topic, which carries its time).
    clock.set(at("07:40"))
    send(
        broker,
        ("zigbee2mqtt/curtain-301", {"position": 100}),
        (
            "curtainwatch/curtain-302/event",
            {"kind": "curtain", "value": "open", "ts": at("07:50").isoformat()},
        ),
    )
    clock.set(at("08:05"))

    rt2 = runtime(db_url, clock, broker.host, broker.port, client_id="cw-restart")
    rt2.start(schedule=False)
    try:
        wait_for(lambda: len(events(rt2, value="open")) == 2, message="queued readings stored")
        clock.set(at("09:15"))
        rt2.engine.settle_due()
        outcomes = {s.resident_id: s.outcome for s in settlements(rt2, kind="curtain_open")}
        assert outcomes == {"r-301": "satisfied", "r-302": "satisfied"}
        [e302] = events(rt2, device_id="curtain-302", value="open")
        assert e302.ts == at("07:50")
    finally:
        rt2.stop()


def test_windows_that_closed_while_down_are_settled_once_after_restart(
    db_url: str, broker: MosquittoBroker, clock: SimulatedClock
) -> None:
    rt = runtime(db_url, clock, broker.host, broker.port, client_id="cw-downtime")
    rt.import_community(BUILDING_3)
    rt.start(schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10)
    send(
        broker,
        ("zigbee2mqtt/curtain-302", {"position": 0, "battery": 95}),
        ("zigbee2mqtt/curtain-301", {"position": 0, "battery": 95}),
        ("zigbee2mqtt/light-301", {"state": "OFF", "battery": 95}),
    )
    wait_for(lambda: rt.ingestor.stats.messages >= 3)
    rt.stop()

    # Down from 06:00 to 23:00: five windows closed meanwhile (r-301 curtain_open 09:15,
    # inactivity 18:00 (last change 06:00 + 12 h), light_on 21:00, curtain_close 22:30;
    # r-302 curtain_open 09:15).
    clock.set(at("23:00"))
    rt2 = runtime(
        db_url,
        clock,
        broker.host,
        broker.port,
        client_id="cw-downtime",
        settle_interval_s=0.2,
        health_interval_s=3600,
        catch_up_s=0.5,
    )
    rt2.start(schedule=True)  # the real APScheduler job does the settling
    try:
        wait_for(lambda: len(settlements(rt2)) >= 5, timeout=15)
        time.sleep(1.0)  # several more ticks: nothing may be settled twice
        got = sorted((s.resident_id, s.kind, s.outcome) for s in settlements(rt2))
        assert got == [
            ("r-301", "curtain_close", "missed"),
            ("r-301", "curtain_open", "missed"),
            ("r-301", "inactivity", "missed"),
            ("r-301", "light_on", "missed"),
            ("r-302", "curtain_open", "missed"),
        ]
        assert sorted(a.cause for a in alerts(rt2)) == sorted(
            "inactivity" if s.kind == "inactivity" else f"routine:{s.routine_id}"
            for s in settlements(rt2)
        )
        assert all(a.raised_at == at("23:00") for a in alerts(rt2))
    finally:
        rt2.stop()
