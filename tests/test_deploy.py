"""The deployment files (issue 5, point 3). No Docker engine runs here, so the compose file
and Dockerfile are checked for consistency, and the commands the containers would run are
run against Debian's mosquitto (and, in test_deploy_stack, PostgreSQL): the broker
entrypoint writes the password file from the environment, the ACL lets sensors publish
only their own topics while curtainwatch reads everything, and anonymous clients are
refused."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from support.mqtt import find_mosquitto, free_port, wait_for
from support.postgres import PostgresCluster
from support.requirements import require

from monitor.config import settable

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
)
PASSWORDS = {
    "MQTT_CURTAINWATCH_PASSWORD": "cw-secret-1",
    "MQTT_ZIGBEE2MQTT_PASSWORD": "z2m-secret-2",
}


def test_compose_has_the_services_and_their_files() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"mosquitto", "postgres", "curtainwatch", "ntfy"}
    assert services["ntfy"]["profiles"] == ["push"]  # optional
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
    assert services["curtainwatch"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_variable_compose_needs_is_in_env_example() -> None:
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    needed = {m.group(1) for m in re.finditer(r"\$\{(\w+):\?", text)}
    assert needed and needed <= set(ENV_EXAMPLE), needed - set(ENV_EXAMPLE)


def test_curtainwatch_service_uses_known_settings_and_the_image_command() -> None:
    service = COMPOSE["services"]["curtainwatch"]
    known = {f"CURTAINWATCH_{f.metadata['env']}" for f in settable()}
    assert set(service["environment"]) <= known, set(service["environment"]) - known
    assert service["environment"]["CURTAINWATCH_DATABASE_URL"].startswith("postgresql+psycopg://")
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    [cmd] = re.findall(r"^CMD (.+)$", dockerfile, flags=re.M)
    assert yaml.safe_load(cmd) == service["command"]
    for src in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (REPO / src).exists(), f"Dockerfile copies missing {src}"
    assert "/healthz" in dockerfile


def _conf_for_here(tmp: Path, port: int) -> Path:
    """deploy/mosquitto.conf with its paths and port moved into `tmp`, as the container's
    mounts would place them."""
    text = (REPO / "deploy" / "mosquitto.conf").read_text(encoding="utf-8")
    replacements = {
        r"^listener 1883.*$": f"listener {port} 127.0.0.1",
        r"^persistence_location .*$": f"persistence_location {tmp}/",
        r"^password_file .*$": f"password_file {tmp / 'passwd'}",
        r"^acl_file .*$": f"acl_file {REPO / 'deploy' / 'mosquitto.acl'}",
        r"^log_dest .*$": f"log_dest file {tmp / 'mosquitto.log'}",
    }
    for pattern, new in replacements.items():
        text, n = re.subn(pattern, new, text, flags=re.MULTILINE)
        assert n == 1, f"deploy/mosquitto.conf has no unique line matching {pattern}"
    if os.geteuid() == 0:
        text += "user root\n"  # the container's mosquitto user does not exist here
    conf = tmp / "mosquitto.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


@pytest.fixture
def deployed_broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto started by deploy/mosquitto-entrypoint.sh, as the compose service does."""
    binary = find_mosquitto()
    require(binary, "mosquitto not installed", "apt-get install mosquitto")
    port = free_port()
    conf = _conf_for_here(tmp_path, port)
    env = {
        **os.environ,
        **PASSWORDS,
        "MOSQUITTO_PASSWD_FILE": str(tmp_path / "passwd"),
        "PATH": f"{Path(str(binary)).parent}:{os.environ.get('PATH', '')}",
    }
    entry = REPO / "deploy" / "mosquitto-entrypoint.sh"
    # One extra user for the per-device pattern rules (a Tasmota plug logs in as itself).
    extra = f"mosquitto_passwd -b {tmp_path / 'passwd'} plug-7 plug-secret"
    script = (entry.read_text(encoding="utf-8")).replace(
        'exec mosquitto -c "$conf"', f'{extra}\nexec mosquitto -c "$conf"'
    )
    patched = tmp_path / "entrypoint.sh"
    patched.write_text(script, encoding="utf-8")
    proc = subprocess.Popen(
        ["sh", str(patched), str(conf)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                _connects(port, "curtainwatch", PASSWORDS["MQTT_CURTAINWATCH_PASSWORD"]) == 0
                or _dead(proc)
            ),
            timeout=10,
        )
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _dead(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


def _connects(port: int, user: str | None, password: str | None) -> int:
    """The CONNACK reason (0 = accepted), or -1 if nothing listens yet."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{user}")
    if user is not None:
        client.username_pw_set(user, password)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc.value)
    try:
        client.connect("127.0.0.1", port, keepalive=5)
    except OSError:
        return -1
    client.loop_start()
    try:
        wait_for(lambda: codes, timeout=5)
    finally:
        # In this order, so the network thread closes the socket itself (a socket left to
        # the garbage collector closes whenever it runs, in the middle of other clients).
        client.disconnect()
        client.loop_stop()
    return codes[0]


def _client(port: int, user: str, password: str, protocol: Any = mqtt.MQTTv311) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{protocol}", protocol=protocol
    )
    client.username_pw_set(user, password)
    client.reconnect_delay_set(min_delay=0.1, max_delay=1)
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    wait_for(client.is_connected, timeout=5)
    return client


def _publish(client: mqtt.Client, topic: str, payload: str) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK, again after a dropped connection.
    Mosquitto 2.0 closes the connection of a client that publishes where the ACL forbids
    (MQTT 3.1.1 allows either that or a PUBACK, [MQTT-3.3.5-2]; its log says "Bad socket
    read/write on client ...: Unknown error"), and paho reconnects by itself: a client may
    be between connections when it publishes next."""
    deadline = time.monotonic() + 20
    while True:
        wait_for(client.is_connected, timeout=5)
        info = client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            info.wait_for_publish(5)
            if info.is_published():
                return
        assert time.monotonic() < deadline, f"{topic}: not published ({info.rc})"
        time.sleep(0.1)


@pytest.mark.broker
def test_entrypoint_refuses_to_start_without_passwords(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")}
    done = subprocess.run(
        ["sh", str(REPO / "deploy" / "mosquitto-entrypoint.sh"), "/nonexistent.conf"],
        env={**env, "MOSQUITTO_PASSWD_FILE": str(tmp_path / "passwd")},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode != 0
    assert "MQTT_CURTAINWATCH_PASSWORD" in done.stderr


@pytest.mark.broker
def test_broker_refuses_strangers_and_keeps_sensors_to_their_topics(deployed_broker: int) -> None:
    port = deployed_broker
    assert _connects(port, None, None) != 0  # anonymous
    assert _connects(port, "curtainwatch", "wrong") != 0
    received: list[str] = []
    reader = _client(port, "curtainwatch", PASSWORDS["MQTT_CURTAINWATCH_PASSWORD"], mqtt.MQTTv5)
    reader.on_message = lambda c, u, m: received.append(m.topic)
    subscribed: list[bool] = []
    reader.on_subscribe = lambda *a: subscribed.append(True)
    # As an instance sharing the work would subscribe (CURTAINWATCH_MQTT_SHARE_GROUP); again
    # after a dropped connection (see _publish), as each session starts clean.
    reader.on_connect = lambda c, *a: c.subscribe("$share/curtainwatch/#", qos=1)
    reader.subscribe("$share/curtainwatch/#", qos=1)
    wait_for(lambda: subscribed, timeout=5)
    z2m = _client(port, "zigbee2mqtt", PASSWORDS["MQTT_ZIGBEE2MQTT_PASSWORD"])
    plug = _client(port, "plug-7", "plug-secret")
    for client, topic in [
        (z2m, "zigbee2mqtt/curtain-301"),  # allowed
        (z2m, "curtainwatch/door-301/event"),  # not its topic
        (plug, "stat/plug-7/POWER"),  # its own
        (plug, "stat/plug-8/POWER"),  # another device's
        (plug, "zigbee2mqtt/curtain-301"),
    ]:
        _publish(client, topic, "{}")
    _publish(z2m, "zigbee2mqtt/last", "{}")
    wait_for(lambda: "zigbee2mqtt/last" in received, timeout=10)
    for client in (reader, z2m, plug):
        client.disconnect()
        client.loop_stop()
    # A set: a publish sent again after a dropped connection may arrive twice.
    assert set(received) == {"stat/plug-7/POWER", "zigbee2mqtt/curtain-301", "zigbee2mqtt/last"}


def test_container_command_is_the_documented_one() -> None:
    """`sh -c "curtainwatch db upgrade && exec curtainwatch serve"`: both are real commands
    of our CLI (test_deploy_stack runs them)."""
    command = COMPOSE["services"]["curtainwatch"]["command"]
    assert command[:2] == ["sh", "-c"]
    steps = [shlex.split(s) for s in command[2].split("&&")]
    assert steps == [["curtainwatch", "db", "upgrade"], ["exec", "curtainwatch", "serve"]]


@pytest.mark.broker
def test_deploy_stack(deployed_broker: int, postgres: PostgresCluster, tmp_path: Path) -> None:
    """The curtainwatch container's command, with the compose file's environment (hosts
    and ports moved to this machine), against PostgreSQL and the broker as compose starts
    it: migrations run, the service comes up healthy, and a zigbee2mqtt reading sent with
    the bridge's password becomes a help alert in PostgreSQL."""
    import sys
    import urllib.request

    import psycopg

    database = postgres.create_database("deploy")
    web_port = free_port()
    values = {**ENV_EXAMPLE, **PASSWORDS, "CURTAINWATCH_BASE_URL": f"http://127.0.0.1:{web_port}"}
    env = {**os.environ}
    for key, raw in COMPOSE["services"]["curtainwatch"]["environment"].items():
        env[key] = re.sub(
            r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: values.get(m.group(1), ""), str(raw)
        )
    env.update(
        {
            "CURTAINWATCH_DATABASE_URL": postgres.url(database),  # the cluster's own login
            "CURTAINWATCH_MQTT_HOST": "127.0.0.1",
            "CURTAINWATCH_MQTT_PORT": str(deployed_broker),
            "CURTAINWATCH_WEB_HOST": "127.0.0.1",
            "CURTAINWATCH_WEB_PORT": str(web_port),
            "CURTAINWATCH_MQTT_CLIENT_ID": f"cw-deploy-{os.getpid()}",
            # `curtainwatch` on PATH, as in the image
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        }
    )
    assert env["CURTAINWATCH_MQTT_USERNAME"] == "curtainwatch"
    assert env["CURTAINWATCH_MQTT_PASSWORD"] == PASSWORDS["MQTT_CURTAINWATCH_PASSWORD"]
    command = COMPOSE["services"]["curtainwatch"]["command"]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(healthy, timeout=60)
        community = tmp_path / "community.yaml"
        community.write_text(
            "timezone: Asia/Shanghai\nresidents:\n  - {id: r-1, name: Test, building: '1',"
            " unit: '101', devices: [{id: card-101, kind: help}]}\n",
            encoding="utf-8",
        )
        done = subprocess.run(
            ["curtainwatch", "import", str(community)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        subprocess.run(
            ["curtainwatch", "--help"], env=env, capture_output=True, check=True
        )  # the CLI is on PATH, as `docker compose exec curtainwatch curtainwatch ...` needs

        # The running service reloads its device registry within a minute; a reading for a
        # device it does not know yet is kept as unknown, so publish until the alert is in.
        def help_alert() -> bool:
            bridge = _client(deployed_broker, "zigbee2mqtt", PASSWORDS["MQTT_ZIGBEE2MQTT_PASSWORD"])
            _publish(bridge, "zigbee2mqtt/card-101", '{"contact": false}')
            bridge.disconnect()
            bridge.loop_stop()
            with psycopg.connect(postgres.url_params(database)) as conn:
                row = conn.execute("SELECT count(*) FROM alerts WHERE kind = 'help'").fetchone()
            return bool(row and row[0])

        wait_for(help_alert, timeout=90, interval=3)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
