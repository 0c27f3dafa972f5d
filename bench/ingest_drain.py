#!/usr/bin/env python3
"""Ingest drain benchmark: how fast does curtainwatch store a backlog that queued on the
broker while it was down, next to a bare paho subscriber that only parses the JSON?

Measures the ingestor's own limit, not a Python publisher's (docs/decisions.md, "Mosquitto
settings"):

1. start Mosquitto with bench/mosquitto-bench.conf (max_queued_messages 0: nothing dropped);
2. load a generated community of --devices residents with one door sensor each (bulk
   inserts, checked against monitor.importing.apply on a sample), one SQLite copy per drain;
3. create the persistent sessions, one curtainwatch (a Runtime with ingestion only, started
   and stopped) and one bare paho subscriber per protocol and repetition;
4. publish ONE backlog of --count QoS 1 zigbee2mqtt readings (door contacts and battery
   heartbeats) while every subscriber is offline: the broker queues it for each session;
5. per protocol, --repeat times, interleaved: time the bare subscriber draining its queue,
   then curtainwatch from Runtime.start() until every message is committed (ingestor
   stats), and check that the events stored equal the state changes published.

Prints the figures; the target is curtainwatch / bare >= 0.7. Exits 1 if a check fails
(lost or extra events), 0 otherwise.

    .venv/bin/python bench/ingest_drain.py [--count 200000] [--protocol 3.1.1|5|both]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for `bench.bulk` and the packages
sys.path.insert(0, str(ROOT / "tests"))

from support.mqtt import ConfValue, MosquittoBroker, find_mosquitto, publish_many  # noqa: E402

from bench.bulk import Template, check_like_importer, load  # noqa: E402
from curtainwatch.runtime import Runtime  # noqa: E402
from monitor.config import Settings  # noqa: E402
from monitor.db import make_engine, upgrade  # noqa: E402
from monitor.models import DeadLetter, Event, UnknownDevice  # noqa: E402

BENCH_CONF = ROOT / "bench" / "mosquitto-bench.conf"
TARGET_RATIO = 0.7
PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
TOPIC_FILTER = "zigbee2mqtt/#"


# -- broker ---------------------------------------------------------------------------------


def bench_conf_overrides(inflight: int | None) -> dict[str, ConfValue]:
    """The settings of bench/mosquitto-bench.conf as MosquittoBroker overrides (the listener
    and log destination are the broker helper's own), optionally with another in-flight cap."""
    conf: dict[str, list[str]] = {}
    for line in BENCH_CONF.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key in ("listener", "log_dest"):
            continue
        conf.setdefault(key, []).append(value.strip())
    overrides: dict[str, ConfValue] = {k: v[0] if len(v) == 1 else v for k, v in conf.items()}
    # The helper's defaults add notice/information logging; keep the bench's quiet set.
    overrides.setdefault("log_type", ["error", "warning"])
    overrides["log_timestamp_format"] = None
    if inflight is not None:
        overrides["max_inflight_messages"] = inflight
    return overrides


# -- workload -------------------------------------------------------------------------------


# One door sensor per resident, a door routine and an inactivity routine: each stored event
# also re-arms inactivity, as in production.
TEMPLATE = Template(
    "Asia/Shanghai",
    (("door", "door"),),
    (
        {"kind": "door", "start": "06:00", "end": "22:00"},
        {"kind": "inactivity", "hours": 12},
    ),
)


def device_id(i: int) -> str:
    return TEMPLATE.device_id("door", i)


@dataclass
class Backlog:
    messages: list[tuple[str, bytes]]
    state_changes: int  # events curtainwatch must store


def make_backlog(count: int, devices: int, change_share: float, seed: int) -> Backlog:
    """`count` zigbee2mqtt readings spread over the devices: a door contact (open or closed
    at random) with probability `change_share`, else a battery/linkquality heartbeat. Counts
    the contacts that change the door's state (the first contact of a device always does)."""
    rng = random.Random(seed)
    state: dict[int, bool] = {}
    changes = 0
    messages: list[tuple[str, bytes]] = []
    for _ in range(count):
        i = rng.randrange(devices)
        topic = f"zigbee2mqtt/{device_id(i)}"
        if rng.random() < change_share:
            contact = rng.random() < 0.5
            if state.get(i) is not contact:
                changes += 1
                state[i] = contact
            payload = {"contact": contact, "battery": 90, "linkquality": rng.randrange(40, 255)}
        else:
            payload = {"battery": rng.randrange(60, 100), "linkquality": rng.randrange(40, 255)}
        messages.append((topic, json.dumps(payload).encode()))
    return Backlog(messages, changes)


# -- subscribers ----------------------------------------------------------------------------


def cw_settings(db: Path, broker: MosquittoBroker, protocol: str, rep: int) -> Settings:
    return Settings(
        database_url=f"sqlite:///{db}",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_client_id=f"cw-bench-{protocol}-{rep}",
        mqtt_protocol=protocol,
        mqtt_topics=(TOPIC_FILTER,),
    )


class BareSubscriber:
    """The baseline: paho, QoS 1, persistent session, automatic PUBACK, json.loads only."""

    def __init__(self, broker: MosquittoBroker, protocol: str, rep: int) -> None:
        self.broker = broker
        self.received = 0
        self.target = 0
        self.done = threading.Event()
        self.subscribed = threading.Event()
        v5 = protocol == "5"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bare-bench-{protocol}-{rep}",
            protocol=PROTOCOLS[protocol],
            clean_session=None if v5 else False,
        )
        self.connect_kwargs: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            self.connect_kwargs = {"clean_start": False, "properties": props}
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(TOPIC_FILTER, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        json.loads(msg.payload)
        self.received += 1
        if self.received >= self.target:
            self.done.set()

    def connect(self) -> None:
        self.client.connect(self.broker.host, self.broker.port, **self.connect_kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def create_bare_session(broker: MosquittoBroker, protocol: str, rep: int) -> None:
    sub = BareSubscriber(broker, protocol, rep)
    sub.connect()
    if not sub.subscribed.wait(10):
        raise RuntimeError(f"bare subscriber ({protocol}) got no SUBACK")
    sub.stop()


def create_cw_session(db: Path, broker: MosquittoBroker, protocol: str, rep: int) -> None:
    rt = Runtime(cw_settings(db, broker, protocol, rep), migrate=False)
    rt.start(ingest=True, schedule=False)
    assert rt.source is not None
    if not rt.source.connected.wait(10):
        raise RuntimeError(f"curtainwatch ({protocol}) did not connect")
    # SUBSCRIBE is queued in on_connect, before stop()'s DISCONNECT, and the broker handles
    # a connection's packets in order; the pause only lets the SUBACK arrive for the log.
    time.sleep(0.3)
    rt.stop()


@dataclass
class Drain:
    seconds: float
    count: int
    cpu_s: float  # this process
    broker_cpu_s: float
    extra: dict[str, Any]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def timed(broker_proc: psutil.Process, run: Callable[[], dict[str, Any]], count: int) -> Drain:
    me = psutil.Process()
    c0, b0, t0 = _cpu(me), _cpu(broker_proc), time.perf_counter()
    extra = run()
    seconds = time.perf_counter() - t0
    return Drain(seconds, count, _cpu(me) - c0, _cpu(broker_proc) - b0, extra)


def drain_bare(
    broker: MosquittoBroker, protocol: str, rep: int, count: int, timeout: float
) -> Drain:
    sub = BareSubscriber(broker, protocol, rep)
    sub.target = count

    def run() -> dict[str, Any]:
        sub.connect()
        if not sub.done.wait(timeout):
            raise RuntimeError(f"bare ({protocol}): {sub.received} of {count} after {timeout}s")
        return {}

    assert broker.pid is not None
    try:
        return timed(psutil.Process(broker.pid), run, count)
    finally:
        sub.stop()


def drain_cw(
    db: Path, broker: MosquittoBroker, protocol: str, rep: int, count: int, timeout: float
) -> Drain:
    rt = Runtime(cw_settings(db, broker, protocol, rep), migrate=False)
    stats = rt.ingestor.stats

    def run() -> dict[str, Any]:
        rt.start(ingest=True, schedule=False)
        deadline = time.monotonic() + timeout
        while stats.messages < count:  # stats move only after a batch commits
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"curtainwatch ({protocol}): {stats.messages} of {count} "
                    f"stored after {timeout}s"
                )
            time.sleep(0.01)  # coarse on purpose: a busy poller would steal the GIL
        return {"batches": stats.batches}

    assert broker.pid is not None
    try:
        drain = timed(psutil.Process(broker.pid), run, count)
        with rt.sessions() as session:
            drain.extra["events_db"] = session.scalar(select(func.count()).select_from(Event))
            drain.extra["dead_letters"] = session.scalar(
                select(func.count()).select_from(DeadLetter)
            )
            drain.extra["unknown"] = session.scalar(select(func.count()).select_from(UnknownDevice))
        drain.extra["messages"] = stats.messages
        return drain
    finally:
        rt.stop()


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:4]),
    )
    ap.add_argument("--count", type=int, default=200_000, help="backlog size (default 200000)")
    ap.add_argument("--devices", type=int, default=10_000, help="residents/devices (10000)")
    ap.add_argument(
        "--protocol",
        choices=["3.1.1", "5", "both"],
        default="3.1.1",
        help="MQTT version of both subscribers (default 3.1.1, the faster one)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="drains per subscriber and protocol, interleaved; the best counts "
        "(default 2: this machine is shared, single runs are noisy)",
    )
    ap.add_argument(
        "--inflight",
        type=int,
        default=None,
        help="broker max_inflight_messages (default: bench/mosquitto-bench.conf)",
    )
    ap.add_argument(
        "--change-share",
        type=float,
        default=0.5,
        help="share of messages that are door contacts (default 0.5)",
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--timeout", type=float, default=600.0, help="per drain, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    args = ap.parse_args(argv)
    protocols = ["3.1.1", "5"] if args.protocol == "both" else [args.protocol]
    runs = [(p, r) for p in protocols for r in range(args.repeat)]

    binary = find_mosquitto()
    if binary is None:
        print("mosquitto not found (apt-get install mosquitto)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cw-ingest-drain-"))
    broker = MosquittoBroker(binary, work / "broker", bench_conf_overrides(args.inflight))
    failed = False
    try:
        broker.start()
        print(
            f"broker {broker.host}:{broker.port} (mosquitto, bench/mosquitto-bench.conf) "
            f"max_inflight_messages={broker.overrides.get('max_inflight_messages')} "
            f"max_queued_messages={broker.overrides.get('max_queued_messages')}"
        )

        t = time.perf_counter()
        now = datetime.now(UTC)
        check_like_importer(TEMPLATE, [0, 1], now)
        template = work / "template.db"
        upgrade(f"sqlite:///{template}")
        engine = make_engine(f"sqlite:///{template}")
        counts = load(engine, TEMPLATE, args.devices, now)
        engine.dispose()
        print(
            f"loaded {counts['residents']} residents, {counts['devices']} devices, "
            f"{counts['routines']} routines in {time.perf_counter() - t:.1f}s "
            f"(bulk, checked against monitor.importing.apply on a sample)"
        )

        dbs: dict[tuple[str, int], Path] = {}
        for p, r in runs:
            dbs[p, r] = work / f"cw-{p}-{r}.db"
            shutil.copyfile(template, dbs[p, r])
            create_cw_session(dbs[p, r], broker, p, r)
            create_bare_session(broker, p, r)

        backlog = make_backlog(args.count, args.devices, args.change_share, args.seed)
        t = time.perf_counter()
        publish_many(
            broker.host,
            broker.port,
            backlog.messages,
            qos=1,
            max_inflight=100,
            client_id="bench-publisher",
            timeout=args.timeout,
        )
        took = time.perf_counter() - t
        print(
            f"published {args.count} QoS 1 readings for {args.devices} devices in {took:.1f}s "
            f"({args.count / took:.0f} msg/s; {backlog.state_changes} state changes), "
            f"queued for {2 * len(runs)} offline persistent sessions"
        )

        results: dict[str, list[tuple[Drain, Drain]]] = {p: [] for p in protocols}
        for p, r in runs:
            bare = drain_bare(broker, p, r, args.count, args.timeout)
            print(
                f"[{p} #{r + 1}] bare paho:     {bare.seconds:6.2f}s {bare.rate:7.0f} msg/s"
                f"       (cpu: client {bare.cpu_s:.1f}s = "
                f"{bare.cpu_s / bare.count * 1e6:.0f} us/msg, broker {bare.broker_cpu_s:.1f}s)"
            )
            cw = drain_cw(dbs[p, r], broker, p, r, args.count, args.timeout)
            x = cw.extra
            print(
                f"[{p} #{r + 1}] curtainwatch:  {cw.seconds:6.2f}s {cw.rate:7.0f} readings/s"
                f"  (cpu: process {cw.cpu_s:.1f}s = {cw.cpu_s / cw.count * 1e6:.0f} us/msg, "
                f"broker {cw.broker_cpu_s:.1f}s; {x['batches']} batches of "
                f"{cw.count / max(1, x['batches']):.0f})"
            )
            ok = (
                x["events_db"] == backlog.state_changes
                and x["dead_letters"] == 0
                and x["unknown"] == 0
                and x["messages"] == args.count
            )
            print(
                f"[{p} #{r + 1}] events stored {x['events_db']} = state changes published "
                f"{backlog.state_changes}, dead letters {x['dead_letters']}, unknown devices "
                f"{x['unknown']}: {'OK' if ok else 'MISMATCH'}"
            )
            failed |= not ok
            results[p].append((bare, cw))

        print()
        print(
            f"best of {args.repeat} per subscriber (ratio = curtainwatch readings/s "
            f"/ bare msg/s, target >= {TARGET_RATIO}):"
        )
        print(
            f"{'protocol':>8} {'N':>8} {'bare s':>7} {'bare msg/s':>10} {'cw s':>7} "
            f"{'cw readings/s':>13} {'ratio':>6}  per-run ratios"
        )
        for p, pairs in results.items():
            bare = min((b for b, _ in pairs), key=lambda d: d.seconds)
            cw = min((c for _, c in pairs), key=lambda d: d.seconds)
            ratio = cw.rate / bare.rate
            verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW {TARGET_RATIO}"
            each = " ".join(f"{c.rate / b.rate:.2f}" for b, c in pairs)
            print(
                f"{p:>8} {args.count:>8} {bare.seconds:7.2f} {bare.rate:10.0f} "
                f"{cw.seconds:7.2f} {cw.rate:13.0f} {ratio:6.2f}  {each}  {verdict}"
            )
    finally:
        broker.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
