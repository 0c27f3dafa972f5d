"""Several instances, one database: duplicates recognised and changes decided once.

- On the backend `db_url` points at: a reading with its own time ("ts") is stored once
  however often it comes and in whatever order; the device state follows the newest.
- On PostgreSQL, with two ingestors in one process over one database: a change without a
  time is decided against the database, so it is stored once even when both see it.
- Over Mosquitto (MQTT 5 shared subscription) and PostgreSQL: two instances each take part
  of the stream, and together store all of it once, publisher duplicates included.
The PostgreSQL-only tests run in the suite's PostgreSQL pass (deselected in the SQLite one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from support.mqtt import StartBroker, publish_many, wait_for

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Device, Event
from sensors.ingest import Message

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def community(curtains: int = 2, doors: int = 2) -> str:
    homes = "".join(
        f"""
  - id: r-{i}
    name: Home {i}
    building: "3"
    devices: [{{id: curtain-{i}, kind: curtain}}, {{id: door-{i}, kind: door}}]"""
        for i in range(max(curtains, doors))
    )
    return f"timezone: Asia/Shanghai\nresidents:{homes}\n"


def event(device: str, value: str, ts: datetime) -> tuple[str, bytes]:
    body = {"kind": "curtain", "value": value, "ts": ts.isoformat()}
    return f"curtainwatch/{device}/event", json.dumps(body).encode()


def stored(rt: Runtime, device: str) -> list[tuple[str, datetime]]:
    with rt.sessions() as s:
        rows = s.execute(
            select(Event.value, Event.ts).where(Event.device_id == device).order_by(Event.ts)
        )
        return [(v, ts) for v, ts in rows]


def state(rt: Runtime, device: str) -> str | None:
    with rt.sessions() as s:
        return s.get_one(Device, device).state


# -- one ingestor, any backend ---------------------------------------------------------------


def test_a_redelivered_stamped_reading_is_recognised_even_after_newer_ones(db_url: str) -> None:
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(START))
    rt.import_community(community())
    t = [START - timedelta(minutes=10 - i) for i in range(3)]
    first = [event("curtain-0", "open", t[0]), event("curtain-0", "closed", t[1])]
    rt.ingestor.process([Message(topic, p, START) for topic, p in first])
    # The instance died before acknowledging: the broker redelivers both, after a newer one.
    rt.ingestor.process([Message(*event("curtain-0", "open", t[2]), START)])
    rt.ingestor.process([Message(topic, p, START, redelivered=True) for topic, p in first])

    assert stored(rt, "curtain-0") == [("open", t[0]), ("closed", t[1]), ("open", t[2])]
    assert (rt.ingestor.stats.duplicates, rt.ingestor.stats.redelivered) == (2, 2)
    assert state(rt, "curtain-0") == "open"  # the newest by time, not the last to arrive
    # A fresh process (its registry read from the database) recognises them too.
    again = Runtime(Settings(database_url=db_url), SimulatedClock(START), migrate=False)
    again.ingestor.process([Message(topic, p, START, redelivered=True) for topic, p in first])
    assert again.ingestor.stats.duplicates == 2 and len(stored(rt, "curtain-0")) == 3


def test_stamped_readings_in_any_order_are_all_stored_and_the_state_is_the_newest(
    db_url: str,
) -> None:
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(START))
    rt.import_community(community())
    t = [START - timedelta(minutes=10 - i) for i in range(4)]
    values = ["open", "closed", "open", "closed"]
    # newest first, one per batch, then the same again in one batch
    for i in (3, 1, 2, 0):
        rt.ingestor.process([Message(*event("curtain-0", values[i], t[i]), START)])
    assert stored(rt, "curtain-0") == list(zip(values, t, strict=True))
    assert state(rt, "curtain-0") == "closed"
    rt.ingestor.process(
        [Message(*event("curtain-0", v, ts), START) for v, ts in zip(values, t, strict=True)]
    )
    assert len(stored(rt, "curtain-0")) == 4 and rt.ingestor.stats.duplicates == 4


# -- two ingestors, one PostgreSQL database --------------------------------------------------


def test_two_ingestors_decide_a_change_once_against_the_database(pg_db_url: str) -> None:
    """Both have the door as closed in memory; the first stores "open", the second, seeing
    the same change (a repeated z2m state), finds it already made in the database."""
    clock = SimulatedClock(START)
    a = Runtime(Settings(database_url=pg_db_url), clock)
    a.import_community(community())
    b = Runtime(Settings(database_url=pg_db_url), clock, migrate=False)
    for rt in (a, b):
        rt.ingestor.process([Message("zigbee2mqtt/door-0", b'{"contact": true}', START)])
    assert a.ingestor.stats.events + b.ingestor.stats.events == 1  # closed, once
    later = START + timedelta(minutes=1)
    clock.set(later)
    opened = Message("zigbee2mqtt/door-0", b'{"contact": false}', later)
    a.ingestor.process([opened])
    b.ingestor.process([opened])
    assert stored(a, "door-0") == [("closed", START), ("open", later)]
    assert state(b, "door-0") == "open"


# -- two instances over Mosquitto ------------------------------------------------------------

CURTAINS, READINGS, DOORS = 20, 50, 60


@pytest.mark.broker
def test_two_instances_share_the_stream_and_store_it_once(
    start_broker: StartBroker, pg_db_url: str
) -> None:
    """MQTT 5 shared subscription over one Mosquitto: each instance takes part of the
    stream (round robin), every message published twice in a row (a publisher's retry lands
    on the other instance), and together they store every reading once."""
    broker = start_broker()
    now = datetime.now(UTC)
    instances = []
    for name in ("a", "b"):
        settings = Settings(
            database_url=pg_db_url,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_client_id=f"cw-share-{name}",
            mqtt_protocol="5",
            mqtt_share_group="curtainwatch",
        )
        instances.append(Runtime(settings, migrate=name == "a"))
    a, b = instances
    a.import_community(community(curtains=CURTAINS, doors=DOORS))
    b.ingestor.reload_registry()
    for rt in instances:
        rt.start(ingest=True, schedule=False)
    try:
        for rt in instances:
            assert rt.source is not None
            wait_for(rt.source.connected.is_set, 20, message="instances to connect")
        readings = [
            event(
                f"curtain-{c}", "open" if i % 2 == 0 else "closed", now - timedelta(milliseconds=i)
            )
            for c in range(CURTAINS)
            for i in range(READINGS)
        ]
        doors = [(f"zigbee2mqtt/door-{d}", b'{"contact": false}') for d in range(DOORS)]
        messages = [m for m in readings + doors for m in (m, m)]  # each twice in a row
        publish_many(broker.host, broker.port, messages, qos=1)

        def all_in() -> bool:
            return sum(rt.ingestor.stats.messages for rt in instances) == len(messages)

        wait_for(all_in, 60, message="both instances to store the stream")
        for rt in instances:
            assert rt.ingestor.wait_idle(30)
    finally:
        for rt in instances:
            rt.stop()

    share = [rt.ingestor.stats.messages for rt in instances]
    assert all(n > 0 for n in share), share
    with a.sessions() as s:
        per_reading = s.execute(
            select(Event.device_id, Event.ts, func.count())
            .where(Event.device_id.like("curtain-%"))
            .group_by(Event.device_id, Event.ts)
        ).all()
        opened_doors = s.scalar(
            select(func.count()).where(Event.device_id.like("door-%"), Event.value == "open")
        )
    assert len(per_reading) == CURTAINS * READINGS
    assert {n for _, _, n in per_reading} == {1}
    assert opened_doors == DOORS
    assert sum(rt.ingestor.stats.duplicates for rt in instances) == CURTAINS * READINGS
