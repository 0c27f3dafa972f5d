"""`curtainwatch serve` as a real process: import a community, serve, a help card over
Mosquitto becomes an alert in the database, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support.mqtt import MosquittoBroker, free_port, publish_many, wait_for
from support.world import BUILDING_3

pytestmark = pytest.mark.broker


def test_serve_ingests_and_stops_cleanly(
    broker: MosquittoBroker, tmp_path: Path, db_url: str
) -> None:
    web_port = free_port()
    env = {
        **os.environ,
        "CURTAINWATCH_DATABASE_URL": db_url,
        "CURTAINWATCH_MQTT_HOST": broker.host,
        "CURTAINWATCH_MQTT_PORT": str(broker.port),
        "CURTAINWATCH_MQTT_CLIENT_ID": "cw-serve-test",
        "CURTAINWATCH_WEB_PORT": str(web_port),
    }
    community = tmp_path / "community.yaml"
    community.write_text(BUILDING_3)
    cli = [sys.executable, "-m", "curtainwatch.cli"]
    done = subprocess.run(
        [*cli, "import", str(community)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "imported 2 residents, 6 devices" in done.stdout

    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen([*cli, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "serving ingest, schedule, web:" in log.read_text(), timeout=20)
        wait_for(lambda: "connected to MQTT" in log.read_text(), timeout=20)
        publish_many(broker.host, broker.port, [("zigbee2mqtt/card-302", '{"contact": false}')])
        db = create_engine(db_url)

        def help_alert() -> list[tuple[str, str]]:
            with db.connect() as c:
                rows = c.execute(text("SELECT resident_id, status FROM alerts WHERE kind = 'help'"))
                return [(r[0], r[1]) for r in rows]

        assert wait_for(help_alert, timeout=20) == [("r-302", "open")]
        db.dispose()
        # the phone pages answer (a made-up link is refused with a page, not an error)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{web_port}/m/not-a-real-link", timeout=10)
        assert refused.value.code == 403
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert "stopping" in log.read_text()


def test_serve_only_splits_the_parts_into_processes(
    broker: MosquittoBroker, tmp_path: Path, db_url: str
) -> None:
    """`--only ingest` stores readings without a web server; `--only web` answers pages and
    never connects to the broker. Both share one database."""
    web_port = free_port()
    env = {
        **os.environ,
        "CURTAINWATCH_DATABASE_URL": db_url,
        "CURTAINWATCH_MQTT_HOST": broker.host,
        "CURTAINWATCH_MQTT_PORT": str(broker.port),
        "CURTAINWATCH_MQTT_CLIENT_ID": "cw-split-test",
        "CURTAINWATCH_WEB_PORT": str(web_port),
    }
    community = tmp_path / "community.yaml"
    community.write_text(BUILDING_3)
    cli = [sys.executable, "-m", "curtainwatch.cli"]
    subprocess.run([*cli, "import", str(community)], env=env, check=True, timeout=60)
    logs = {part: tmp_path / f"{part}.log" for part in ("ingest", "web")}
    procs = {}
    for part, path in logs.items():
        with path.open("w") as out:
            procs[part] = subprocess.Popen(
                [*cli, "serve", "--only", part], env=env, stdout=out, stderr=subprocess.STDOUT
            )
    try:
        wait_for(lambda: "connected to MQTT" in logs["ingest"].read_text(), timeout=20)
        wait_for(lambda: "serving web:" in logs["web"].read_text(), timeout=20)
        publish_many(broker.host, broker.port, [("zigbee2mqtt/card-301", '{"contact": false}')])
        db = create_engine(db_url)

        def help_alerts() -> int:
            with db.connect() as c:
                return int(
                    c.execute(text("SELECT count(*) FROM alerts WHERE kind = 'help'")).scalar_one()
                )

        assert wait_for(help_alerts, timeout=20) == 1
        db.dispose()
        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login", timeout=10)
        assert page.status == 200
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {part: proc.wait(timeout=30) for part, proc in procs.items()}
    assert codes == {"ingest": 0, "web": 0}, {p: logs[p].read_text()[-2000:] for p in logs}
    assert "MQTT" not in logs["web"].read_text().split("serving web:")[0]
    assert "connected to MQTT" not in logs["web"].read_text()
