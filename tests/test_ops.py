"""/healthz and /metrics (issue 4, point 7): health of a runtime started against a real
Mosquitto (healthy, then 503 once the broker goes away), of one that runs nothing here, of a
stalled scheduler and an unreachable database; Prometheus text whose numbers match what was
fed through the real ingestor."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from support.mqtt import StartBroker, wait_for
from support.web import web_app
from support.world import World, advance, feed, on_broker
from werkzeug.test import TestResponse

from curtainwatch.runtime import Runtime
from monitor.models import Delivery
from monitor.pages.health import check_health


def health(client: Any) -> tuple[int, dict[str, Any]]:
    resp: TestResponse = client.get("/healthz")
    return resp.status_code, resp.get_json()


# -- /healthz ------------------------------------------------------------------------------------


@pytest.mark.broker
def test_healthz_follows_the_broker_of_a_started_runtime(
    db_url: str, start_broker: StartBroker, request: pytest.FixtureRequest
) -> None:
    broker = start_broker()
    settings = on_broker(broker, f"cw-{request.node.name}", settle_interval_s=1.0)
    rt = World(settings=settings).runtime(db_url)
    client = web_app(rt).test_client()
    rt.start()
    try:

        def healthy() -> dict[str, Any] | None:
            code, body = health(client)
            return body if code == 200 and body["checks"]["scheduler"]["state"] == "alive" else None

        body = wait_for(healthy, timeout=15, message="a healthy /healthz")
        assert body["status"] == "ok"
        assert body["checks"]["broker"] == {
            "ok": True,
            "state": "connected",
            "host": broker.host,
            "port": broker.port,
        }
        assert body["checks"]["database"] == {"ok": True, "state": "reachable"}
        assert body["checks"]["scheduler"]["settle_interval_s"] == 1.0
        assert body["checks"]["scheduler"]["last_round_age_s"] <= 3 * 1.0 + 5
        # Nothing was due at 06:00, yet the round counts: its time is the runtime's clock.
        assert body["last_settle_round_at"] == "2026-11-22T22:00:00+00:00"  # 06:00 Shanghai
        assert body["last_settled_at"] is None

        broker.stop()

        def unhealthy() -> dict[str, Any] | None:
            code, body = health(client)
            return body if code == 503 else None

        body = wait_for(unhealthy, timeout=10, message="/healthz to notice the broker is gone")
        assert body["status"] == "unhealthy"
        assert body["checks"]["broker"]["ok"] is False
        assert body["checks"]["broker"]["state"] == "disconnected"
        # Only the broker is wrong: the rest still says so.
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["scheduler"]["ok"] is True
    finally:
        rt.stop()


def test_healthz_of_a_runtime_that_runs_nothing_here(rt: Runtime, client: FlaskClient) -> None:
    code, body = health(client)
    assert code == 200
    assert body["status"] == "ok"
    assert body["checks"]["broker"] == {"ok": True, "state": "not run here"}
    assert body["checks"]["scheduler"] == {"ok": True, "state": "not run here"}
    assert body["last_settled_at"] is None
    assert body["now"] == "2026-11-22T22:00:00+00:00"  # the clock: 06:00 in Shanghai

    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0}, "06:30")
    advance(rt, "09:20")  # settles the morning windows
    code, body = health(client)
    assert code == 200
    assert body["last_settled_at"] == "2026-11-23T01:20:00+00:00"  # 09:20 in Shanghai
    resp = client.get("/healthz")
    assert resp.headers["Cache-Control"] == "no-store"
    rt.stop()


def test_a_scheduler_without_a_recent_settle_round_is_unhealthy(db_url: str) -> None:
    rt = World(settings={"settle_interval_s": 10.0}).runtime(db_url)
    rt.start(ingest=False)
    try:
        wait_for(lambda: rt.last_settle_round is not None, message="the first settle round")
        assert rt.last_settle_round is not None
        with rt.sessions() as s:
            fresh = check_health(rt, s, rt.clock.now(), monotonic=rt.last_settle_round + 1)
            stale = check_health(rt, s, rt.clock.now(), monotonic=rt.last_settle_round + 36)
        assert fresh.ok and fresh.scheduler.state == "alive"
        assert fresh.broker.state == "not run here"
        assert not stale.ok
        assert (stale.scheduler.state, stale.scheduler.detail["last_round_age_s"]) == (
            "stalled",
            36.0,
        )
    finally:
        rt.stop()


def test_an_unreachable_database_is_unhealthy(rt: Runtime, tmp_path: Any) -> None:
    broken = create_engine(f"sqlite:///{tmp_path}/no/such/dir/cw.db")
    with Session(broken) as s:
        result = check_health(rt, s, rt.clock.now())
    assert not result.ok
    assert result.database.state == "unreachable"
    assert "unable to open database file" in result.database.detail["error"]
    assert result.as_json()["status"] == "unhealthy"
    rt.stop()


# -- /metrics ------------------------------------------------------------------------------------


def scrape(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_count_what_was_fed(rt: Runtime, client: FlaskClient) -> None:
    before = scrape(client)
    assert before[("curtainwatch_ingest_events_total", ())] == 0
    assert before[("curtainwatch_alerts", (("kind", "help"), ("status", "open")))] == 0

    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0, "battery": 90}, "06:30")  # 1 event
    feed(rt, "zigbee2mqtt/card-301", {"action": "single"}, "07:40")  # 1 event, help alert
    feed(rt, "zigbee2mqtt/card-501", {"contact": False}, "07:41")  # 1 event, help alert
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:45")  # 1 event
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:46")  # no change: no event
    feed(rt, "zigbee2mqtt/door-301", b"{not json", "07:50")  # dead letter
    feed(rt, "zigbee2mqtt/curtain-501", {"position": 150}, "07:51")  # dead letter
    feed(rt, "zigbee2mqtt/mystery-9", {"contact": True}, "07:52")  # unknown device
    feed(rt, "zigbee2mqtt/door-501/availability", {"state": "offline"}, "07:53")
    advance(rt, "09:20")  # r-302's curtain: missed; r-301's: satisfied; r-501's: unknown

    m = scrape(client)
    assert m[("curtainwatch_ingest_messages_total", ())] == 9
    assert m[("curtainwatch_ingest_events_total", ())] == 4
    assert m[("curtainwatch_ingest_dead_letters_total", ())] == 2
    assert m[("curtainwatch_ingest_unknown_total", ())] == 1
    assert m[("curtainwatch_events_stored", ())] == 4
    assert m[("curtainwatch_dead_letters_stored", ())] == 2
    assert m[("curtainwatch_unknown_devices", ())] == 1
    assert m[("curtainwatch_devices", ())] == 9
    assert m[("curtainwatch_devices_offline", ())] == 1
    assert m[("curtainwatch_database_up", ())] == 1

    def alerts(kind: str, status: str) -> float:
        return m[("curtainwatch_alerts", (("kind", kind), ("status", status)))]

    assert alerts("help", "open") == 2
    assert alerts("missed_routine", "open") == 1
    assert alerts("device_offline", "open") == 1  # door-501, found by the device check
    assert alerts("inactivity", "open") == alerts("help", "resolved") == 0
    assert sum(v for (name, _), v in m.items() if name == "curtainwatch_alerts") == 4

    def settled(outcome: str) -> float:
        return m[("curtainwatch_settlements", (("outcome", outcome),))]

    assert (settled("satisfied"), settled("missed"), settled("unknown")) == (1, 1, 1)
    assert settled("away") == 0

    with rt.sessions() as s:
        by_status = dict(
            s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
    assert sum(by_status.values()) > 0  # the ladder's first step tried the volunteers
    for status in ("pending", "sent", "gave_up"):
        sample = m[("curtainwatch_notification_deliveries", (("status", status),))]
        assert sample == by_status.get(status, 0)
    rt.stop()


def test_every_app_has_its_own_registry(rt: Runtime) -> None:
    first, second = web_app(rt).test_client(), web_app(rt).test_client()
    feed(rt, "zigbee2mqtt/card-301", {"action": "single"}, "07:40")
    for client in (first, second):
        m = scrape(client)
        assert m[("curtainwatch_events_stored", ())] == 1
        assert ("process_resident_memory_bytes", ()) in m or ("process_cpu_seconds_total", ()) in m
    rt.stop()


def test_metrics_token_when_configured(db_url: str) -> None:
    rt = World(settings={"metrics_token": "s3cret-scrape"}).runtime(db_url)
    client = web_app(rt).test_client()
    resp = client.get("/metrics")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    m = scrape(client, Authorization="Bearer s3cret-scrape")
    assert m[("curtainwatch_database_up", ())] == 1
    # /healthz stays open: load balancers do not carry tokens.
    assert client.get("/healthz").status_code == 200
    rt.stop()  # (without a token set, /metrics is open: the other tests scrape it so)


def test_healthz_is_cheap(rt: Runtime, client: FlaskClient) -> None:
    """Polled every few seconds: a constant handful of statements, however much is stored."""
    from sqlalchemy import event

    statements: list[str] = []
    event.listen(rt.db, "before_cursor_execute", lambda *a: statements.append(a[2]))
    health(client)
    assert len(statements) == 2  # SELECT 1, the newest settlement
    for _ in range(20):
        health(client)
    assert len(statements) == 42
    rt.stop()
