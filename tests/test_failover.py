"""Failover: two `curtainwatch serve` instances over one PostgreSQL and one Mosquitto (MQTT 5
shared subscription); one is killed with SIGKILL while it holds unacknowledged readings, the
other carries on alone, then the killed one is started again, as an orchestrator would.
Afterwards every reading is stored once, every window settled once, no message sent twice.
Runs in the suite's PostgreSQL pass (CURTAINWATCH_TEST_DB=postgresql); about 75 s.

Also, in-process on the backend `db_url` points at: the one window in which a notification
can go out twice (documented in alerts/notify.py), and that nothing else can cause it."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from support.instances import HoldingProxy, Instance, run_cli, serve_env
from support.mqtt import StartBroker, publish_many, wait_for
from support.receiver import Receiver, receiver

from alerts.notify import LEASE, Notifier, apprise_send
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Delivery
from sensors.ingest import Message

# -- the failover run ---------------------------------------------------------------------------

LOAD_HOMES = 50  # residents whose curtains carry the readings
READINGS = 10_000
FIRST_HALF = READINGS // 2
# Residents with no reading at all: their windows are missed and notified. Q1's windows
# close soon after the first import; Q2's (added by a second import while one instance is
# down) while only the survivor runs; Q3's and the load homes' later.
QUIET = {"q1": 2, "q2": 2, "q3": 2}
STAFF_AFTER_S = 5
INTERVALS = {"settle_interval": 1, "notify_interval": 1}


def zone_near_noon(now: datetime) -> str:
    """A fixed-offset zone where it is around noon now: windows a few minutes long never
    cross a local midnight, whenever the test runs."""
    offset = 12 - now.astimezone(UTC).hour  # -11 .. +12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the sign is inverted


def window_due_at(due: datetime, tz: str) -> str:
    """A routine whose window closes (end + grace) exactly at `due`: end on the minute, the
    seconds as grace, opened 15 minutes before."""
    from zoneinfo import ZoneInfo

    local = due.astimezone(ZoneInfo(tz))
    end = local.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=15)
    grace = int((local - end).total_seconds())
    return f'{{kind: curtain_open, start: "{start:%H:%M}", end: "{end:%H:%M}", grace: "{grace}s"}}'


def community(tz: str, rx: Receiver, due: dict[str, list[datetime]]) -> str:
    """Every resident and device from the start; routines only for the groups in `due`
    (one due time per resident of the group, in order)."""

    def routines(group: str, i: int) -> str:
        times = due.get(group)
        return f"\n    routines: [{window_due_at(times[i], tz)}]" if times else ""

    homes = [
        f"""
  - id: load-{i:02d}
    name: Load {i:02d}
    building: "1"
    devices: [{{id: curtain-L{i:02d}, kind: curtain}}]{routines("load", 0)}"""
        for i in range(LOAD_HOMES)
    ]
    for group, n in QUIET.items():
        homes += [
            f"""
  - id: {group}-{i}
    name: Quiet {group.upper()}-{i}
    building: "2"
    devices: [{{id: curtain-{group}-{i}, kind: curtain}}]{routines(group, i)}"""
            for i in range(n)
        ]
    return f"""
timezone: {tz}
residents:{"".join(homes)}
people:
  - {{id: v-1, name: Volunteer, role: volunteer, buildings: ["1", "2"], language: en,
      notify: ["{rx.url("v-1")}"]}}
  - {{id: s-1, name: Staff, role: staff, language: en, notify: ["{rx.url("s-1")}"]}}
escalation:
  - {{after: 0m, notify: volunteers}}
  - {{after: {STAFF_AFTER_S}s, notify: staff}}
"""


def readings(base: datetime) -> list[tuple[str, bytes]]:
    """READINGS curtain events, each with a time of its own (1 ms apart), spread over the
    load homes; each curtain alternates open, closed, ... in time order."""
    out = []
    for n in range(READINGS):
        home, turn = n % LOAD_HOMES, n // LOAD_HOMES
        body = {
            "kind": "curtain",
            "value": "open" if turn % 2 == 0 else "closed",
            "ts": (base + timedelta(milliseconds=n)).isoformat(),
        }
        out.append((f"curtainwatch/curtain-L{home:02d}/event", json.dumps(body).encode()))
    return out


def scalar(db: Engine, sql: str, **params: Any) -> Any:
    with db.connect() as c:
        return c.execute(text(sql), params).scalar()


def summed(pattern: str, log: str) -> int:
    return sum(int(m) for m in re.findall(pattern, log))


def ingest_counter(env: dict[str, str], name: str) -> int:
    """One of an instance's own ingest counters, from its /metrics page."""
    url = f"http://127.0.0.1:{env['CURTAINWATCH_WEB_PORT']}/metrics"
    page = urllib.request.urlopen(url, timeout=10).read().decode()
    found = re.search(rf"^curtainwatch_ingest_{name}_total(?:{{[^}}]*}})? (\S+)$", page, re.M)
    assert found, page[:2000]
    return int(float(found.group(1)))


@pytest.mark.slow
@pytest.mark.broker
def test_an_instance_killed_midway_loses_and_repeats_nothing(
    start_broker: StartBroker, pg_db_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    marks: dict[str, float] = {}
    broker = start_broker(persistence=True)
    proxy = HoldingProxy(broker.host, broker.port)  # between instance A and the broker
    db = create_engine(pg_db_url)
    env: dict[str, Any] = {
        "mqtt_protocol": "5",
        "mqtt_share_group": "curtainwatch",
        "secret_key": "failover-test",
        **INTERVALS,
    }
    env_a = serve_env(pg_db_url, proxy.host, proxy.port, "cw-failover-a", **env)
    env_b = serve_env(pg_db_url, broker.host, broker.port, "cw-failover-b", **env)
    a, b = Instance("a", env_a, tmp_path), Instance("b", env_b, tmp_path)
    file = tmp_path / "community.yaml"
    now = datetime.now(UTC)
    tz = zone_near_noon(now)
    due: dict[str, list[datetime]] = {}

    def import_windows(rx: Receiver, closing_in: dict[str, list[float]]) -> None:
        """Import the file with the windows of these groups closing so many seconds from
        now; again, with new times, should the import outlast one (its first window would
        then be tomorrow's)."""
        for _ in range(3):
            at = datetime.now(UTC)
            due.update({g: [at + timedelta(seconds=x) for x in xs] for g, xs in closing_in.items()})
            file.write_text(community(tz, rx, due))
            run_cli(env_b, "import", str(file))
            tomorrow = (at + timedelta(hours=1)).replace(tzinfo=None)
            late = " OR ".join(f"resident_id LIKE '{g}-%'" for g in closing_in)
            sql = (
                "SELECT count(*) FROM routines JOIN schedules ON schedules.id = schedule_id"
                f" WHERE schedules.next_due_at > :t AND ({late})"
            )
            if scalar(db, sql, t=tomorrow) == 0:
                return
        raise AssertionError("the import kept outlasting the windows it was given")

    with receiver() as rx:
        try:
            # 1. The operator imports the community; both instances start.
            import_windows(rx, {"q1": [25, 30]})
            for instance in (a, b):
                instance.start()
            for instance in (a, b):
                instance.wait_connected()
            # The quiet homes' sensors say they are alive: a window without a reading is
            # then missed, not unknown.
            quiet = [f"curtain-{g}-{i}" for g, n in QUIET.items() for i in range(n)]
            alive = [(f"zigbee2mqtt/{d}/availability", b'{"state": "online"}') for d in quiet]
            publish_many(broker.host, broker.port, alive)
            wait_for(
                lambda: (
                    scalar(db, "SELECT count(*) FROM devices WHERE last_seen IS NOT NULL")
                    == len(quiet)
                ),
                30,
                message="the quiet homes' sensors to report",
            )

            # 2. The first half, while A's acknowledgements are lost on the way: A stores
            # its share but the broker never hears so.
            stream = readings(now - timedelta(minutes=2))
            proxy.hold()
            marks["first half"] = time.monotonic()
            publish_many(broker.host, broker.port, stream[:FIRST_HALF], max_inflight=200)
            events = "SELECT count(*) FROM events WHERE stamped"
            wait_for(lambda: scalar(db, events) == FIRST_HALF, 60, message="the first half")

            # 3. SIGKILL A, holding every reading of its share unacknowledged (as many as
            # it stored: its own counter says how many).
            stored_by_a = ingest_counter(env_a, "events")
            killed_at = datetime.now(UTC)
            marks["kill"] = time.monotonic()
            a.kill()
            proxy.sever()
            proxy.release()
            publish_many(broker.host, broker.port, stream[FIRST_HALF:], max_inflight=200)
            # Staff change the file meanwhile: new windows close while only B runs (Q2),
            # and later on (Q3 and the load homes, probably with A back).
            import_windows(rx, {"q2": [12, 16], "q3": [34, 38], "load": [38]})
            sent_alone = (
                "SELECT count(*) FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
                " WHERE a.resident_id LIKE 'q2-%' AND d.status = 'sent'"
            )
            wait_for(
                lambda: (
                    scalar(db, sent_alone) == 2 * QUIET["q2"]
                    and scalar(db, events) >= FIRST_HALF + 2000
                ),
                60,
                message="B alone to store readings, settle the Q2 windows and notify",
            )

            # 4. The orchestrator starts A again: same client id, so its session (the
            # unacknowledged share and what queued for it meanwhile) is delivered.
            restarted_at = datetime.now(UTC)
            marks["restart"] = time.monotonic()
            a.start()
            a.wait_connected()
            routines = LOAD_HOMES + sum(QUIET.values())
            notices = 2 * sum(QUIET.values())  # volunteer, then staff, per missed window
            wait_for(
                lambda: (
                    scalar(db, events) == READINGS
                    and scalar(db, "SELECT count(*) FROM settlements") == routines
                    and scalar(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
                    == notices
                ),
                90,
                message="everything to be stored, settled and sent",
            )
            marks["done"] = time.monotonic()
            time.sleep(2)  # a few more rounds of every job: nothing more may happen
        finally:
            codes = {i.name: i.stop() for i in (a, b)}
            proxy.close()
        received = [(path, msg["title"]) for path, msg in rx.received]

    # Every reading stored exactly once, and A's redelivered share recognised as stored.
    with db.connect() as c:
        per_reading = c.execute(
            text("SELECT device_id, ts, count(*) FROM events WHERE stamped GROUP BY 1, 2")
        ).all()
        states = {
            r[0]: r[1]
            for r in c.execute(text("SELECT id, state FROM devices WHERE id LIKE 'curtain-L%'"))
        }
        settled = c.execute(
            text(
                "SELECT r.resident_id, count(s.id), min(s.outcome), min(s.settled_at),"
                " min(s.due_at), min(r.id) FROM routines r"
                " LEFT JOIN settlements s ON s.routine_id = r.id GROUP BY r.resident_id"
            )
        ).all()
        deliveries = c.execute(
            text(
                "SELECT d.person_id, a.resident_id, d.attempts, d.sent_at FROM deliveries d"
                " JOIN alerts a ON a.id = d.alert_id"
            )
        ).all()
    db.dispose()
    assert codes == {"a": 0, "b": 0}, a.log_text()[-3000:] + b.log_text()[-3000:]
    assert len(per_reading) == READINGS
    assert {n for _, _, n in per_reading} == {1}
    assert set(states.values()) == {"closed"}  # each curtain's newest reading, by its time
    restart_log = a.log_since_start()
    redelivered = summed(r"(\d+) redelivered by the broker", restart_log)
    recognised = summed(r"(\d+) readings already stored", restart_log)
    # All of A's share of the first half came again, and each was known as stored. (The
    # broker may mark a few more as redelivered: messages it wrote to A's dead connection
    # before it noticed, or an availability message whose PUBACK was held back.)
    assert 0 < stored_by_a < FIRST_HALF
    assert recognised == stored_by_a <= redelivered, restart_log[-3000:]
    assert summed(r"(\d+) readings already stored", b.log_text()) == 0

    # Every window settled exactly once, when due, with the outcome its readings call for.
    assert len(settled) == LOAD_HOMES + sum(QUIET.values())
    for resident, count, outcome, settled_at, due_at, _ in settled:
        assert count == 1, resident
        assert outcome == ("satisfied" if resident.startswith("load") else "missed"), resident
        assert settled_at >= due_at
    alone = [
        r for r, _, _, at, _, _ in settled if killed_at < at.replace(tzinfo=UTC) < restarted_at
    ]
    assert {"q2-0", "q2-1"} <= set(alone)

    # No message went out twice: one per missed window and person, each sent on one try.
    quiet_names = {f"{g}-{i}": f"Quiet {g.upper()}-{i}" for g, n in QUIET.items() for i in range(n)}
    expected = {(p, name) for name in quiet_names.values() for p in ("v-1", "s-1")}
    counts = Counter((path, title.split(" (")[0]) for path, title in received)
    assert set(counts) == expected and set(counts.values()) == {1}, counts
    assert sorted((p, quiet_names[r]) for p, r, _, _ in deliveries) == sorted(expected)
    assert {attempts for _, _, attempts, _ in deliveries} == {1}

    took = time.monotonic() - started
    print(
        f"failover: {took:.0f} s in all; first half stored in "
        f"{marks['kill'] - marks['first half']:.1f} s; A down for "
        f"{marks['restart'] - marks['kill']:.1f} s; after the restart all done in "
        f"{marks['done'] - marks['restart']:.1f} s; A had stored {stored_by_a} readings "
        f"unacknowledged; after its restart {redelivered} came marked redelivered, "
        f"{recognised} recognised as stored"
    )


# -- the one window for a repeated notification ---------------------------------------------------

DAY = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


class Crash(BaseException):
    """The process dies here: nothing after it runs (not even `except Exception`)."""


def help_alert(db_url: str, rx: Receiver) -> Runtime:
    """A runtime with one help alert whose volunteer message is queued."""
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(DAY))
    rt.import_community(
        f"""
timezone: Asia/Shanghai
residents:
  - {{id: r-1, name: Wang, building: "3", devices: [{{id: card-1, kind: help}}]}}
people:
  - {{id: v-1, name: Li, role: volunteer, buildings: ["3"], language: en,
      notify: ["{rx.url("v-1")}"]}}
"""
    )
    rt.ingestor.process([Message("zigbee2mqtt/card-1", b'{"contact": false}', DAY)])
    rt.escalator.escalate()
    return rt


def other_instance(rt: Runtime, send: Any = apprise_send) -> Notifier:
    return Notifier(rt.sessions, rt.clock, "http://x", send, link_key="k")


def delivery(rt: Runtime) -> Delivery:
    with rt.sessions() as s:
        return s.scalars(select(Delivery)).one()


def test_a_message_sent_by_an_instance_that_then_died_goes_out_again_after_the_lease(
    db_url: str,
) -> None:
    """The documented window: sent, then the process died before recording it. Another
    instance leaves the claim alone until its lease ends, then sends once more."""
    with receiver() as rx:
        rt = help_alert(db_url, rx)
        clock = rt.clock
        assert isinstance(clock, SimulatedClock)

        def send_then_die(url: str, title: str, body: str) -> str | None:
            apprise_send(url, title, body)
            raise Crash

        with pytest.raises(Crash):
            other_instance(rt, send_then_die).send_due()
        assert len(rx.to("v-1")) == 1 and delivery(rt).status == "pending"
        clock.advance(LEASE - timedelta(seconds=1))
        assert rt.notifier.send_due() == 0  # still claimed by the dead instance
        clock.advance(timedelta(seconds=1))
        assert rt.notifier.send_due() == 1
        assert len(rx.to("v-1")) == 2
        d = delivery(rt)
        assert (d.status, d.attempts) == ("sent", 1)


def test_a_sender_that_outlived_its_lease_does_not_overwrite_the_one_that_took_over(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A send slower than the lease: the delivery is taken over (and sent) by another
    instance; the slow one's late result does not count a second attempt or move sent_at."""
    with receiver() as rx:
        rt = help_alert(db_url, rx)
        clock = rt.clock
        assert isinstance(clock, SimulatedClock)
        taken_over: list[int] = []

        def slow_send(url: str, title: str, body: str) -> str | None:
            clock.advance(LEASE + timedelta(seconds=1))
            taken_over.append(rt.notifier.send_due())
            return apprise_send(url, title, body)

        assert other_instance(rt, slow_send).send_due() == 1
        assert taken_over == [1]
        d = delivery(rt)
        assert (d.status, d.attempts, d.sent_at) == ("sent", 1, clock.now())
        assert "lease lost" in caplog.text and len(rx.to("v-1")) == 2


def test_two_live_instances_never_send_one_message_twice(db_url: str) -> None:
    """Each claims right before sending; while one sends, the other finds it claimed."""
    with receiver() as rx:
        rt = help_alert(db_url, rx)
        during: list[int] = []

        def send_while_other_looks(url: str, title: str, body: str) -> str | None:
            during.append(rt.notifier.send_due())
            return apprise_send(url, title, body)

        assert other_instance(rt, send_while_other_looks).send_due() == 1
        assert during == [0] and rt.notifier.send_due() == 0
        assert len(rx.to("v-1")) == 1 and delivery(rt).status == "sent"
