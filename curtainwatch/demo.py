"""`curtainwatch demo`: the whole system on one machine with nothing but Python.

Like curtainwatch/runtime.py this is a composition root, so it may reach into sensors/, alerts/
and web/: it seeds a demo community (two buildings, 30 residents, volunteers on rotas,
staff, a family member who consented) into a fresh SQLite file (./demo.db by default,
recreated at every start), starts an MQTT broker inside the process (amqtt, loopback
only), the runtime on an accelerated clock, the sensor simulator and the web app, and
prints where to sign in. Notifications go to a small HTTP receiver inside the demo that
prints each one ("push >"), standing in for the volunteers' phones. Ctrl-C (or SIGTERM)
stops everything, in order."""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from monitor.clock import AcceleratedClock, SystemClock
from monitor.config import DEFAULT_TOPICS, Settings
from monitor.importing.load import load_community
from monitor.messages import english

if TYPE_CHECKING:
    from alerts.lifecycle import Raised
    from curtainwatch.runtime import Runtime

log = logging.getLogger("curtainwatch.demo")

ZONE = ZoneInfo("Asia/Shanghai")
DAY_MINUTES = 24 * 60
PASSWORD = "curtainwatch-demo"
START_AT = time(5, 30)  # before the first curtain window opens at 07:00

NAMES = {
    "3": [
        "Wang Shulan",
        "Zhao Guiying",
        "Li Xiuying",
        "Zhang Guilan",
        "Liu Yulan",
        "Chen Fengying",
        "Yang Xiuzhen",
        "Huang Shuying",
        "Zhou Guizhi",
        "Wu Yumei",
        "Xu Jianguo",
        "Sun Deming",
        "Ma Guoqiang",
        "Zhu Baoshan",
        "Hu Zhiming",
    ],
    "5": [
        "Guo Lanying",
        "He Shufen",
        "Lin Cuiying",
        "Gao Xiuqin",
        "Luo Yuzhen",
        "Zheng Fenglan",
        "Liang Guihua",
        "Xie Yuying",
        "Song Jinfeng",
        "Tang Suzhen",
        "Han Zhenhua",
        "Feng Changlin",
        "Deng Jianhua",
        "Cao Wenhua",
        "Peng Shuhua",
    ],
}
PERSONAS = {
    "r-301": "help",  # flips her help card on the first morning
    "r-303": "sleeper",
    "r-306": "battery",  # her curtain sensor's battery runs down
    "r-502": "sleeper",
    "r-510": "inactive",  # stops all activity; her son consented to alerts
}
AWAY = "r-507"  # away for the weekend (in the community file, so no alarms)
FAMILY_OF = "r-510"

# (username, role, person, what they are), all with PASSWORD
USERS = (
    ("admin", "admin", None, "administrator"),
    ("staff", "staff", "s-chen", "Chen Fang, community staff"),
    ("volunteer", "volunteer", "v-li", "Li Ming, volunteer for building 3"),
    ("family", "family", "f-tang", "Tang Jun, son of Tang Suzhen (building 5, inactive)"),
)


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 10.0  # real minutes per simulated day
    web_port: int = 8000
    mqtt_port: int = 1883
    db: Path = Path("demo.db")
    start: datetime | None = None  # default: today 05:30 in Asia/Shanghai
    seed: int = 2026

    @property
    def factor(self) -> float:
        return DAY_MINUTES / self.speed


def weekend_of(day: date) -> tuple[date, date]:
    """The Saturday and Sunday of `day`'s weekend, or of the next one on a weekday."""
    saturday = (
        day - timedelta(days=1)
        if day.weekday() == 6
        else day + timedelta(days=(5 - day.weekday()) % 7)
    )
    return saturday, saturday + timedelta(days=1)


def community_yaml(start_day: date, notify_url: Callable[[str], str]) -> str:
    """The demo community file; `notify_url(person_id)` is where each person's pushes go."""
    away_from, away_to = weekend_of(start_day)
    residents: list[dict[str, Any]] = []
    for building, names in NAMES.items():
        for i, name in enumerate(names):
            rid = f"r-{building}{i + 1:02d}"
            n = rid.removeprefix("r-")
            early = i % 4 == 3 and PERSONAS.get(rid) != "sleeper"
            resident: dict[str, Any] = {
                "id": rid,
                "name": name,
                "building": building,
                "unit": f"{i // 3 + 1}0{i % 3 + 1}",
                "phone": f"138 0351 0{n}",
                "devices": [
                    {"id": f"curtain-{n}", "kind": "curtain"},
                    {"id": f"door-{n}", "kind": "door"},
                    {"id": f"light-{n}", "kind": "light"},
                    {"id": f"card-{n}", "kind": "help"},
                ],
                "routines": [
                    {"kind": "curtain_open", "start": "06:30", "end": "08:30", "grace": "30m"}
                    if early
                    else {"kind": "curtain_open", "start": "07:00", "end": "09:00", "grace": "15m"},
                    {"kind": "curtain_close", "start": "18:00", "end": "22:30"},
                    {"kind": "light_on", "start": "17:30", "end": "21:00"},
                    {"kind": "door", "start": "06:00", "end": "22:00"},
                    {"kind": "inactivity", "hours": 12},
                ],
            }
            if i % 5 == 0:
                resident["notes"] = "Hard of hearing: knock loudly."
            if rid == FAMILY_OF:
                resident["contact"] = "Tang Jun (son), 139 0351 1510"
            if rid == AWAY:
                resident["away"] = [{"from": away_from.isoformat(), "to": away_to.isoformat()}]
            residents.append(resident)

    def rota(start: str, end: str) -> list[dict[str, str]]:
        return [{"days": "mon-sun", "from": start, "to": end}]

    people = [
        _person("v-li", "Li Ming", "volunteer", "en", notify_url, buildings=["3"]),
        _person("v-zhang", "Zhang Min", "volunteer", "zh-CN", notify_url, buildings=["3"]),
        _person("v-zhou", "Zhou Lei", "volunteer", "en", notify_url, buildings=["5"]),
        _person("v-liu", "Liu Fang", "volunteer", "zh-CN", notify_url, buildings=["5"]),
        _person("s-chen", "Chen Fang", "staff", "en", notify_url),
        _person(
            "f-tang",
            "Tang Jun",
            "family",
            "en",
            notify_url,
            resident=FAMILY_OF,
            consent=(start_day - timedelta(days=10)).isoformat(),
            digest="20:00",
        ),
    ]
    # Early and late shifts; at night nobody is on duty, so staff hear at once.
    people[0]["rota"] = people[2]["rota"] = rota("06:00", "14:00")
    people[1]["rota"] = people[3]["rota"] = rota("14:00", "22:00")
    doc = {
        "timezone": str(ZONE),
        "residents": residents,
        "people": people,
        "escalation": [
            {"after": "0m", "notify": "volunteers"},
            {"after": "15m", "notify": "staff"},
            {"after": "30m", "notify": "family"},
        ],
    }
    # JSON is YAML; it keeps "06:30" and dates as strings with no quoting rules to remember.
    return json.dumps(doc, ensure_ascii=False, indent=1)


def _person(
    pid: str, name: str, role: str, language: str, notify_url: Callable[[str], str], **more: Any
) -> dict[str, Any]:
    return (
        {"id": pid, "name": name, "role": role, "language": language}
        | more
        | {"notify": [notify_url(pid)]}
    )


class PushPrinter:
    """The volunteers' phones, for the demo: Apprise `json://` URLs point here, and each
    message is printed. Listens on loopback, on a free port."""

    def __init__(self) -> None:
        self.received = 0
        self.names: dict[str, str] = {}  # person id -> name, for the printed line
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                try:
                    msg = json.loads(self.rfile.read(length))
                except ValueError:
                    msg = {}
                who = self.path.strip("/")
                body = str(msg.get("message", "")).replace("\n", "  ")
                log.info("push > %s (%s): %s", outer.names.get(who, who), who, body)
                outer.received += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="curtainwatch-demo-push", daemon=True
        )

    def url(self, person_id: str) -> str:
        return f"json://127.0.0.1:{self.port}/{person_id}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_demo(base: Settings, options: DemoOptions) -> int:
    """Run the demo until SIGINT or SIGTERM; returns the exit code."""
    from curtainwatch.runtime import Runtime
    from curtainwatch.serve import web_server
    from monitor.admin.users import create_user, hash_password
    from sensors.embedded_broker import EmbeddedBroker
    from sensors.simulator import Simulator

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _quiet_logging()

    start = options.start or datetime.combine(SystemClock().now().astimezone(ZONE), START_AT, ZONE)
    db = options.db.resolve()
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)  # a fresh community at every start
    web_port = _free_or_any(options.web_port)

    pushes = PushPrinter()
    text = community_yaml(start.astimezone(ZONE).date(), pushes.url)
    spec = load_community(text)
    pushes.names = {p.id: p.name for p in spec.people}
    residents = {r.id: r for r in spec.residents}
    pushes.start()
    broker = EmbeddedBroker(port=options.mqtt_port)

    settings = replace(
        base,
        database_url=f"sqlite:///{db}",
        mqtt_host="127.0.0.1",
        mqtt_username=None,
        mqtt_password=None,
        mqtt_client_id="curtainwatch-demo",
        mqtt_share_group="",
        mqtt_topics=DEFAULT_TOPICS,
        # Ticks of about a simulated minute, in real seconds.
        settle_interval_s=max(0.25, 60 / options.factor),
        health_interval_s=max(1.0, 300 / options.factor),
        notify_interval_s=max(0.5, 60 / options.factor),
        catch_up_s=1.0,
        base_url=f"http://127.0.0.1:{web_port}",
        web_host="127.0.0.1",
        web_port=web_port,
    )
    # Stands still at the start while the database and community are set up.
    clock = AcceleratedClock(start, options.factor, paused=True)

    def when(at: datetime) -> str:
        return at.astimezone(ZONE).strftime("%a %H:%M")

    def raised(r: Raised) -> None:
        f = r.finding
        who = residents.get(f.resident_id)
        if f.kind == "missed_routine":
            what = f.routine_kind
        else:
            what = english(f.detail) if f.detail else f.kind
        log.info(
            "[%s] ALERT %s%s: %s (%s), %s",
            when(f.at),
            f.kind,
            f" (repeat {r.repeats})" if r.repeats else "",
            who.name if who else f.resident_id,
            f.resident_id,
            what,
        )

    runtime: Runtime | None = None
    web: Any = None
    simulator: Simulator | None = None
    try:
        mqtt_port = broker.start()
        settings = replace(settings, mqtt_port=mqtt_port)
        runtime = Runtime(settings, clock, on_raised=raised)
        runtime.import_community(text)
        hashed = hash_password(PASSWORD)  # one argon2 hash for all four: 0.2 s each
        with runtime.sessions.begin() as session:
            for username, role, person, _ in USERS:
                create_user(
                    session, username, "", role, clock.now(), person_id=person, hashed=hashed
                )
        web = web_server(runtime, settings)
        clock.resume()
        runtime.start()
        assert runtime.source is not None
        if not runtime.source.connected.wait(15):
            log.error("curtainwatch did not connect to the embedded broker; stopping")
            return 1
        simulator = Simulator(
            spec,
            clock,
            "127.0.0.1",
            mqtt_port,
            personas=PERSONAS,
            seed=options.seed,
            client_id="curtainwatch-demo-simulator",
        )
        simulator.start()
        _banner(options, settings, clock, db, residents)
        _watch(runtime, clock, stop, residents, when)
    finally:
        log.info("stopping the demo")
        if web is not None:
            web.close()
        if simulator is not None:
            simulator.stop()
        if runtime is not None:
            runtime.stop()
        broker.stop()
        pushes.stop()
    print(f"demo stopped; its database stays in {db} until the next start", flush=True)
    return 0


def _watch(
    runtime: Runtime,
    clock: AcceleratedClock,
    stop: threading.Event,
    residents: dict[str, Any],
    when: Callable[[datetime], str],
) -> None:
    """Until stopped: print the simulated hour as it turns, and each alert resolved (by a
    late check-in, a recovered sensor, or someone in the dashboard)."""
    from monitor.models import Alert

    hour = None
    since = clock.start
    while not stop.wait(0.5):
        now = clock.now().astimezone(ZONE)
        if now.hour != hour:
            hour = now.hour
            log.info("---- simulated time %s ----", now.strftime("%a %Y-%m-%d %H:%M"))
        with runtime.sessions() as s:
            resolved = s.execute(
                select(
                    Alert.resident_id,
                    Alert.kind,
                    Alert.outcome,
                    Alert.resolved_by,
                    Alert.resolved_at,
                )
                .where(Alert.status == "resolved", Alert.resolved_at > since)
                .order_by(Alert.resolved_at)
            ).all()
        for rid, kind, outcome, by, at in resolved:
            if at is None:
                continue  # resolved rows always carry a time; mypy cannot know
            since = max(since, at)
            who = residents.get(rid or "")
            log.info(
                "[%s] resolved %s: %s (%s), outcome %s, by %s",
                when(at),
                kind,
                who.name if who else rid,
                rid,
                outcome,
                by,
            )


def _banner(
    options: DemoOptions,
    settings: Settings,
    clock: AcceleratedClock,
    db: Path,
    residents: dict[str, Any],
) -> None:
    hour_s = clock.real_seconds(timedelta(hours=1))
    start = clock.start.astimezone(ZONE).strftime("%a %Y-%m-%d %H:%M")

    def who(rid: str) -> str:
        return f"{residents[rid].name} ({rid})"

    sleepers = " and ".join(who(r) for r, p in PERSONAS.items() if p == "sleeper")
    away = residents[AWAY].away[0]
    story = [
        "curtains open from about 06:30 and are checked at 09:00 or 09:15",
        f"{who(_persona('help'))} flips her help card soon after 08:00",
        f"{sleepers} sleep in: a missed curtain at 09:15, then a late check-in resolves it",
        f"{who(_persona('inactive'))} stops all activity: the alert climbs from the volunteer "
        "to staff to her son",
        f"the curtain sensor of {who(_persona('battery'))} runs out of battery",
        f"{who(AWAY)} is away {away[0]:%a %m-%d} to {away[1]:%a %m-%d}: no alarms for her",
    ]
    lines = [
        "",
        f"curtainwatch demo: open {settings.base_url}/",
        f"  simulated time starts {start} ({ZONE}); a day takes {options.speed:g} real minutes, "
        f"an hour {hour_s:.0f} s",
        "  sign in (user / password):",
        *(f"    {user} / {PASSWORD}   {what}" for user, _, _, what in USERS),
        "  what happens:",
        *(f"    - {line}" for line in story),
        "  notifications to phones are printed here as 'push >'",
        f"  MQTT broker (amqtt, in this process): 127.0.0.1:{settings.mqtt_port}",
        f"  database (recreated at every start): {db}",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _persona(persona: str) -> str:
    return next(rid for rid, p in PERSONAS.items() if p == persona)


def _free_or_any(port: int) -> int:
    """`port` if free on loopback, else any free port (the demo should start regardless)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free: int = sock.getsockname()[1]
    log.info("port %s is taken; the web app takes %s", port, free)
    return free


class _Console(logging.Formatter):
    """Short lines for the story (real time, then the message); level and source for
    anything else."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", "%H:%M:%S")
        self.detailed = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"
        )

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO and record.name in (log.name, "sensors.simulator"):
            return super().format(record)
        return self.detailed.format(record)


def _quiet_logging() -> None:
    """One line per thing a visitor should notice; other modules only when something is
    wrong."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Console())
    for name in ("sensors.ingest", "sensors.mqtt", "waitress", "alembic", "apprise"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A settle tick still running when the next is due is normal at demo speed.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
