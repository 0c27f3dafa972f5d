"""Test helpers for the web interface: a small community in two buildings with one user of
each role, a runtime on a simulated clock over a real SQLite database, an app, signing in
through the real login form (CSRF and all), and feeding readings through the real ingestor.

    rt = web_runtime(db_url)          # community imported, users made, clock at 06:00
    client = signed_in(create_app(rt), "staff")
    feed(rt, "zigbee2mqtt/card-301", {"action": "help"}, "07:40")
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from curtainwatch.runtime import Runtime
from monitor.admin.users import create_user, hash_password
from monitor.clock import SimulatedClock
from monitor.config import Settings
from sensors.ingest import Message

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = "2026-11-23"
PASSWORD = "correct horse battery"

COMMUNITY = """
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    phone: "138 0000 0301"
    contact: "Wang Jun (son), 139 0000 1111"
    notes: "Hard of hearing: knock loudly."
    devices:
      - {id: curtain-301, kind: curtain}
      - {id: door-301, kind: door}
      - {id: light-301, kind: light}
      - {id: card-301, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
      - {kind: curtain_close, start: "18:00", end: "22:30"}
      - {kind: light_on, start: "17:30", end: "21:00"}
      - {kind: door, start: "06:00", end: "22:00"}
      - {kind: inactivity, hours: 12}
  - id: r-302
    name: Zhao Guiying
    building: "3"
    unit: "302"
    devices:
      - {id: curtain-302, kind: curtain}
      - {id: card-302, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
  - id: r-501
    name: Sun Lihua
    building: "5"
    unit: "501"
    devices:
      - {id: curtain-501, kind: curtain}
      - {id: door-501, kind: door}
      - {id: card-501, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
      - {kind: door, start: "06:00", end: "22:00"}
    away: [{from: "2026-12-20", to: "2026-12-27"}]
people:
  - {id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], language: en,
     notify: ["json://127.0.0.1:9/v-li"]}
  - {id: v-zhou, name: Zhou Lei, role: volunteer, buildings: ["5"], language: en,
     notify: ["json://127.0.0.1:9/v-zhou"]}
  - {id: s-chen, name: Chen Fang, role: staff, language: en, notify: ["json://127.0.0.1:9/s-chen"]}
  - {id: f-wang, name: Wang Jun, role: family, resident: r-301, consent: "2026-11-20",
     language: en, notify: ["json://127.0.0.1:9/f-wang"]}
  - {id: f-sun, name: Sun Qiang, role: family, resident: r-501, consent: "2026-11-20",
     language: en, notify: ["json://127.0.0.1:9/f-sun"]}
escalation:
  - {after: 0m, notify: volunteers}
  - {after: 15m, notify: staff}
  - {after: 30m, notify: family}
"""

# username -> (role, person): one user per role, and a second volunteer and family member
# who must not see the first ones' residents (the authorization matrix uses these).
USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "staff": ("staff", "s-chen"),
    "vol3": ("volunteer", "v-li"),
    "vol5": ("volunteer", "v-zhou"),
    "fam301": ("family", "f-wang"),
    "fam501": ("family", "f-sun"),
}


_HASHED: list[str] = []


def _hashed_password() -> str:
    if not _HASHED:
        _HASHED.append(hash_password(PASSWORD))
    return _HASHED[0]


def local(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=SHANGHAI)


def web_runtime(
    db_url: str, community: str = COMMUNITY, start: str = "06:00", **settings: Any
) -> Runtime:
    """A runtime (not started: no broker, no scheduler) with the community imported and the
    USERS made, its simulated clock at `start` on DAY in Shanghai."""
    clock = SimulatedClock(local(DAY, start))
    rt = Runtime(Settings(database_url=db_url, **settings), clock)
    rt.import_community(community)
    with rt.sessions.begin() as s:
        for username, (role, person) in USERS.items():
            create_user(
                s,
                username,
                PASSWORD,
                role,
                clock.now(),
                person_id=person,
                language="en",
                hashed=_hashed_password(),
            )
    return rt


class EnglishClient(FlaskClient):
    """A test client whose browser asks for English (the app's default is Chinese), so
    tests can read the pages; a test of languages sets Accept-Language itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


def web_app(rt: Runtime, **config: Any) -> Flask:
    from web.app import create_app

    app = create_app(rt, {"TESTING": True, **config})
    app.test_client_class = EnglishClient
    return app


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at `path` (Flask-WTF's hidden field)."""
    page = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password}
    )


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    resp = sign_in(client, username)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return client


def post_form(
    client: FlaskClient, path: str, data: dict[str, Any], form_page: str | None = None
) -> TestResponse:
    """POST `data` to `path` with the CSRF token read from `form_page` (default: `path`)."""
    return client.post(path, data={"csrf_token": csrf_token(client, form_page or path), **data})


def feed(rt: Runtime, topic: str, payload: Any, hhmm: str, day: str = DAY) -> None:
    """One MQTT message through the real ingestor (adapters, events, help alerts), as if it
    arrived at `hhmm` local time; moves the simulated clock there first."""
    when = local(day, hhmm)
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(when)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    rt.ingestor.process([Message(topic, body, when.astimezone(UTC))])


def advance(rt: Runtime, hhmm: str, day: str = DAY) -> None:
    """Move the clock to `hhmm` and run what the scheduler would: settle, then notify."""
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(local(day, hhmm))
    rt.engine.settle_due()
    rt.engine.check_devices()
    rt.notify()


def visible(resp: TestResponse) -> str:
    """The text a person would read on the page, tags, scripts and styles removed."""
    page = resp.get_data(as_text=True)
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
