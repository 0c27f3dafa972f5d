"""Tests of the test infrastructure itself: the broker fixtures and their settings, the
capped publisher, the shipped broker configs, and the skip-or-fail dependency rule."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from sqlalchemy import inspect
from support.mqtt import (
    BROKER_DEFAULTS,
    Collector,
    MosquittoBroker,
    StartBroker,
    find_mosquitto,
    free_port,
    publish_many,
    wait_for,
)
from support.postgres import PostgresCluster, find_postgres_bindir
from support.requirements import require

from monitor.db import make_engine, upgrade
from sensors.ingest import BATCH_SIZE

REPO = Path(__file__).resolve().parents[1]
QUEUED = 5000  # well above mosquitto's default max_queued_messages of 1000


def _queue_while_offline(
    broker: MosquittoBroker, client_id: str, count: int, protocol: MQTTProtocolVersion
) -> Collector:
    """Subscribe with a persistent session, go offline, publish ``count`` QoS 1 messages,
    then reconnect *without* subscribing again and return the started collector."""
    prefix = f"infra/{client_id}"
    Collector(
        broker.host,
        broker.port,
        [f"{prefix}/#"],
        client_id=client_id,
        persistent=True,
        protocol=protocol,
    ).start().stop()
    sent = publish_many(
        broker.host, broker.port, ((f"{prefix}/{i % 7}", str(i)) for i in range(count))
    )
    assert sent == count
    return Collector(
        broker.host, broker.port, [], client_id=client_id, persistent=True, protocol=protocol
    ).start()


@pytest.mark.broker
@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["mqtt311", "mqtt5"])
def test_offline_persistent_subscriber_gets_every_queued_message(
    broker: MosquittoBroker, protocol: MQTTProtocolVersion
) -> None:
    sub = _queue_while_offline(broker, f"infra-offline-{protocol.name}", QUEUED, protocol)
    try:
        assert sub.session_present is True
        wait_for(lambda: sub.count() >= QUEUED, timeout=30, message=f"{QUEUED} messages")
        time.sleep(0.2)  # nothing extra trickles in
        payloads = sub.payloads()
        assert len(payloads) == QUEUED
        assert sorted(int(p) for p in payloads) == list(range(QUEUED))
    finally:
        sub.stop()


@pytest.mark.broker
def test_mosquitto_default_queue_limit_drops_messages(start_broker: StartBroker) -> None:
    """Negative control: with mosquitto's defaults the test above would fail."""
    limited = start_broker(max_queued_messages=None, max_queued_bytes=None)
    sub = _queue_while_offline(limited, "infra-default-limit", 2000, mqtt.MQTTv311)
    try:
        wait_for(lambda: sub.count() >= 1000, timeout=30)
        time.sleep(0.5)
        assert sub.count() < 2000, "mosquitto's default 1000-message queue no longer drops"
    finally:
        sub.stop()


@pytest.mark.broker
def test_persistent_broker_keeps_queue_across_restart(start_broker: StartBroker) -> None:
    durable = start_broker(persistence=True)
    port = durable.port
    first = Collector(durable.host, port, ["restart/#"], client_id="infra-restart", persistent=True)
    first.start().stop()
    publish_many(durable.host, port, ((f"restart/{i}", str(i)) for i in range(1500)))
    durable.restart()  # SIGTERM: mosquitto writes mosquitto.db before exiting
    assert durable.port == port
    assert (durable.workdir / "mosquitto.db").exists()
    with Collector(durable.host, port, [], client_id="infra-restart", persistent=True) as sub:
        assert sub.session_present is True
        wait_for(lambda: sub.count() >= 1500, timeout=30)


@pytest.mark.broker
def test_broker_fixture_basics(broker: MosquittoBroker) -> None:
    assert broker.running and broker.host == "127.0.0.1" and broker.port > 0
    conf = broker.conf_path.read_text()
    assert f"listener {broker.port} 127.0.0.1" in conf
    assert "max_queued_messages 0" in conf
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass
    wait_for(lambda: "mosquitto version" in broker.log_text(), timeout=5)


@pytest.mark.broker
def test_publish_many_goes_past_paho_65535_limit(broker: MosquittoBroker) -> None:
    """paho refuses a 65,536th unacknowledged message (MQTT_ERR_QUEUE_SIZE, message ids
    wrap); publish_many caps what is in flight, so 70,000 in one go all get PUBACKs."""
    count = 70_000
    sent = publish_many(broker.host, broker.port, ((f"cap/{i % 3}", b"x") for i in range(count)))
    assert sent == count


def test_wait_for_returns_value_or_raises() -> None:
    assert wait_for(lambda: 42, timeout=0.1) == 42
    with pytest.raises(AssertionError, match="the answer"):
        wait_for(lambda: 0, timeout=0.1, interval=0.01, message="the answer")


def test_db_url_points_at_a_fresh_database(db_url: str, db_backend: str, tmp_path: Path) -> None:
    if db_backend == "sqlite":
        assert db_url == f"sqlite:///{tmp_path}/cw.db"
        assert not (tmp_path / "cw.db").exists()
        return
    assert db_url.startswith("postgresql+psycopg://cw@127.0.0.1:")
    engine = make_engine(db_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_new_db_url_gives_separate_databases(new_db_url: Callable[..., str]) -> None:
    first, second = new_db_url("first"), new_db_url("second")
    assert first != second
    upgrade(first)
    engines = [make_engine(url) for url in (first, second)]
    assert "alerts" in inspect(engines[0]).get_table_names()
    assert inspect(engines[1]).get_table_names() == []
    for engine in engines:
        engine.dispose()


def test_postgres_cluster_runs_unprivileged_and_cleans_up() -> None:
    """A cluster of its own (not the session's): as root the server runs as another user
    (PostgreSQL refuses root); a dropped database is gone even with a connection left
    open; stop() ends the server and removes its directory."""
    bindir = find_postgres_bindir()
    require(bindir, "PostgreSQL server binaries not found", "apt-get install postgresql")
    assert bindir is not None
    cluster = PostgresCluster(bindir).start()
    try:
        root, port = cluster.root, cluster.port
        assert root is not None and root.is_dir()
        server_uid = (cluster.data_dir / "postmaster.pid").stat().st_uid
        assert server_uid != 0
        assert server_uid == (cluster.run_as.uid if os.geteuid() == 0 else os.geteuid())
        name = cluster.create_database("probe")
        assert name in cluster.databases()
        left_open = psycopg.connect(cluster.url_params(name))
        assert left_open.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        cluster.drop_database(name)
        assert name not in cluster.databases()
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
        left_open.close()
    finally:
        cluster.stop()
    assert not root.exists() and not cluster.running
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.shared_data
def test_shared_data_fixture(shared_data: Path) -> None:
    assert shared_data.is_dir()
    assert any(shared_data.iterdir())


@pytest.mark.parametrize("ci", ["", "false", "1"])
def test_require_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="widget missing: apt-get install widget"):
        require(False, "widget missing", "apt-get install widget")


def test_require_skips_without_ci_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require(None, "widget missing", "apt-get install widget")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_require_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="widget missing: apt-get install widget"):
        require(False, "widget missing", "apt-get install widget")


def test_require_passes_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require("/usr/bin/widget", "widget missing", "apt-get install widget")


# --- the shipped configs must be accepted by the mosquitto we test against -------------


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found.setdefault(key, []).append(value.strip())
    return found


def _run_conf(text: str, workdir: Path, port: int) -> None:
    """Start mosquitto on ``text``, check it listens on ``port``, stop it."""
    binary = find_mosquitto()
    require(binary, "mosquitto not installed", "apt-get install mosquitto")
    assert binary is not None
    conf = workdir / "check.conf"
    conf.write_text(text)
    proc = subprocess.Popen(
        [binary, "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def listening() -> bool:
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=5)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("name", ["bench/mosquitto-bench.conf", "deploy/mosquitto.conf"])
def test_shipped_conf_keeps_queued_messages(name: str) -> None:
    settings = _directives((REPO / name).read_text())
    assert settings["max_queued_messages"] == [str(BROKER_DEFAULTS["max_queued_messages"])]
    assert settings["max_queued_bytes"] == [str(BROKER_DEFAULTS["max_queued_bytes"])]
    assert settings["max_inflight_messages"] == [str(BROKER_DEFAULTS["max_inflight_messages"])]


def test_the_in_flight_window_holds_two_batches() -> None:
    # With acknowledgement on commit, a broker that keeps to its window strictly sends the
    # next batch only while the last one commits if the window holds both.
    assert BROKER_DEFAULTS["max_inflight_messages"] == 2 * BATCH_SIZE


@pytest.mark.broker
def test_bench_conf_template_starts(tmp_path: Path) -> None:
    port = free_port()
    text = (REPO / "bench" / "mosquitto-bench.conf").read_text().replace("{port}", str(port))
    _run_conf(text, tmp_path, port)
