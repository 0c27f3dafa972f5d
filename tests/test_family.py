"""Family opt-in with consent (issue 3, point 5): a staff invitation opens a page showing the
relative's name and exactly what will be shared; accepting stores the consent (time, text
version); the new family member then hears the family step of the ladder and the daily
digest for their relative only, each message carrying a stop link that ends everything.
Expired, used and tampered invitations, bad addresses and cross-site posts are refused with
a clear page. Real SQLite database, simulated clock, a local HTTP receiver, Flask's test
client."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.receiver import Receiver, receiver
from support.watch import alerts, local
from werkzeug.test import TestResponse

from alerts.family import CONSENT_VERSION, consent_text, invite
from alerts.lifecycle import resolve
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Person
from sensors.ingest import Message
from web.app import create_app

DAY = "2026-11-23"
NEXT = "2026-11-24"


def community(rx: Receiver) -> str:
    return f"""
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices:
      - {{id: curtain-301, kind: curtain}}
    routines:
      - {{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}}
  - id: r-502
    name: Zhao Guiying
    building: "5"
    unit: "502"
    devices:
      - {{id: curtain-502, kind: curtain}}
people:
  - {{id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], language: en,
      notify: ["{rx.url("v-li")}"]}}
  - {{id: s-chen, name: Chen Fang, role: staff, language: en, notify: ["{rx.url("s-chen")}"]}}
escalation:
  - {{after: 0m, notify: volunteers}}
  - {{after: 15m, notify: staff}}
  - {{after: 30m, notify: family}}
"""


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def rt(db_url: str, rx: Receiver) -> Runtime:
    runtime = Runtime(
        Settings(database_url=db_url, base_url="https://cw.example"),
        SimulatedClock(local(DAY, "06:00")),
    )
    runtime.import_community(community(rx))
    runtime.ingestor.process(
        [
            Message(
                "zigbee2mqtt/curtain-301",
                json.dumps({"position": 0}).encode(),
                local(DAY, "06:00").astimezone(UTC),
            )
        ]
    )
    return runtime


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    app: Flask = create_app(rt, {"TESTING": True})
    return app.test_client()


def at(rt: Runtime, when: datetime) -> None:
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(when)
    rt.engine.settle_due()
    rt.notify()


def make_invite(rt: Runtime, resident: str, ttl: timedelta = timedelta(days=7)) -> str:
    with rt.sessions.begin() as s:
        return invite(s, resident, "s-chen", rt.clock.now(), ttl)


def visible(resp: TestResponse) -> str:
    page = re.sub(r"<style.*?</style>", " ", resp.get_data(as_text=True), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def form_field(resp: TestResponse) -> str:
    m = re.search(r'name="form_token" value="([0-9a-f]+)"', resp.get_data(as_text=True))
    assert m, "no form on the page"
    return m.group(1)


def sign_up(
    client: FlaskClient, token: str, name: str, notify: str, digest_at: str = "20:00"
) -> TestResponse:
    page = client.get(f"/family/invite/{token}?lang=en")
    assert page.status_code == 200, visible(page)
    return client.post(
        f"/family/invite/{token}?lang=en",
        data={
            "form_token": form_field(page),
            "name": name,
            "language": "en",
            "notify": notify,
            "digest_at": digest_at,
        },
    )


def stop_path(message: str) -> str:
    m = re.search(
        r"Stop these messages: https://cw\.example(/family/stop/[A-Za-z0-9_.\-]+)$", message
    )
    assert m, message
    return m.group(1)


def family(rt: Runtime, name: str) -> Person:
    with rt.sessions() as s:
        [p] = s.query(Person).filter_by(role="family", name=name).all()
        return p


def test_invitation_page_shows_the_relative_and_exactly_what_is_shared(
    rt: Runtime, client: FlaskClient
) -> None:
    token = make_invite(rt, "r-301")
    zh = visible(client.get(f"/family/invite/{token}"))
    assert "Wang Shulan" in zh and " ".join(consent_text("zh-CN").split()) in zh
    resp = client.get(f"/family/invite/{token}?lang=en")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    en = visible(resp)
    assert "Messages about Wang Shulan" in en
    assert " ".join(consent_text("en").split()) in en
    assert CONSENT_VERSION in en
    for example in ("ntfy://ntfy.sh/your-topic", "mailto://", "tgram://"):
        assert example in en
    for other in ("Zhao", "r-502", "301", "Li Ming", "Chen Fang"):  # nobody else, no address
        assert other not in en and other not in zh


def test_accept_then_family_step_and_digest_carry_a_stop_link_that_stops_everything(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    resp = sign_up(client, make_invite(rt, "r-301"), "Wang Jun", rx.url("fam"))
    assert resp.status_code == 200, visible(resp)
    assert "Thank you, Wang Jun" in visible(resp) and "20:00" in visible(resp)
    # A relative of another resident, signed up the same way.
    resp = sign_up(client, make_invite(rt, "r-502"), "Zhao Min", rx.url("other"))
    assert resp.status_code == 200, visible(resp)

    p = family(rt, "Wang Jun")
    assert (p.role, p.resident_id, p.language, p.notify) == (
        "family",
        "r-301",
        "en",
        [rx.url("fam")],
    )
    assert p.consented_at == local(DAY, "06:00")
    assert p.consent == local(DAY, "06:00").date()
    assert p.consent_version == CONSENT_VERSION
    assert p.digest_at == "20:00" and p.digest_next_at == local(DAY, "20:00")
    assert p.id.startswith("f-") and p.opted_out_at is None

    # The ladder: missed curtain, volunteer, staff after 15 min, family after 30.
    at(rt, local(DAY, "09:15"))
    at(rt, local(DAY, "09:30"))
    assert rx.to("fam") == []
    at(rt, local(DAY, "09:45"))
    [alert_msg] = rx.to("fam")
    assert alert_msg["title"] == "Wang Shulan (3-301): curtain not opened"
    stop = stop_path(alert_msg["message"])

    [a] = alerts(rt)
    with rt.sessions.begin() as s:
        assert resolve(s, a.id, "v-li", "fine", "", local(DAY, "10:00"))

    at(rt, local(DAY, "20:00"))
    [_, digest] = rx.to("fam")
    assert digest["title"] == "Wang Shulan 11-23"
    assert stop_path(digest["message"]) == stop
    # The other relative only ever heard about their own.
    [other_digest] = rx.to("other")
    assert other_digest["title"] == "Zhao Guiying 11-23"
    assert all("Wang Shulan" not in m["title"] + m["message"] for m in rx.to("other"))

    # The stop link: a confirmation page, then a POST from it.
    page = client.get(stop)
    assert page.status_code == 200
    assert "Stop all messages about Wang Shulan" in visible(page)
    assert client.post(stop, data={}).status_code == 403  # no form token: refused
    assert family(rt, "Wang Jun").opted_out_at is None
    assert client.post(stop, data={"form_token": form_field(page)}).status_code == 200
    assert family(rt, "Wang Jun").opted_out_at == local(DAY, "20:00")
    again = client.post(stop, data={"form_token": form_field(page)})  # harmless twice
    assert again.status_code == 200 and "Messages stopped" in visible(again)
    assert "Messages stopped" in visible(client.get(stop))

    # Next day: a new missed curtain climbs the whole ladder, and the digest time comes.
    for hm in ("09:15", "09:30", "09:45", "12:00", "20:00"):
        at(rt, local(NEXT, hm))
    assert len(rx.to("s-chen")) == 2  # the ladder did run
    assert len(rx.to("fam")) == 2  # nothing new after the stop
    assert len(rx.to("other")) == 2  # the other relative's digest still comes


def test_expired_invitation_is_refused(rt: Runtime, client: FlaskClient) -> None:
    token = make_invite(rt, "r-301", ttl=timedelta(days=7))
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(local(DAY, "06:00") + timedelta(days=7, minutes=1))
    resp = client.get(f"/family/invite/{token}")
    assert resp.status_code == 410
    assert "This invitation has expired" in visible(resp) and "Wang Shulan" not in visible(resp)


def test_used_invitation_is_refused(rt: Runtime, client: FlaskClient, rx: Receiver) -> None:
    token = make_invite(rt, "r-301")
    page = client.get(f"/family/invite/{token}?lang=en")
    assert sign_up(client, token, "Wang Jun", rx.url("fam")).status_code == 200
    resp = client.get(f"/family/invite/{token}")
    assert resp.status_code == 409 and "already been used" in visible(resp)
    second = client.post(
        f"/family/invite/{token}",
        data={
            "form_token": form_field(page),
            "name": "Someone Else",
            "language": "en",
            "notify": rx.url("x"),
        },
    )
    assert second.status_code == 409
    with rt.sessions() as s:
        assert [p.name for p in s.query(Person).filter_by(role="family")] == ["Wang Jun"]


def test_tampered_invitation_and_stop_links_are_refused(rt: Runtime, client: FlaskClient) -> None:
    token = make_invite(rt, "r-301")
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "nonsense"):
        resp = client.get(f"/family/invite/{bad}")
        assert resp.status_code == 403 and "This link is not valid" in visible(resp)
    assert client.get("/family/stop/nonsense").status_code == 403


def test_bad_address_reshows_the_form_naming_the_line(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    token = make_invite(rt, "r-301")
    notify = f"{rx.url('fam')}\nnot-an-address://whatever"
    resp = sign_up(client, token, "Wang Jun", notify)
    assert resp.status_code == 400
    text = visible(resp)
    assert "Line 2 is not an address we can send to: not-an-address://whatever" in text
    assert 'value="Wang Jun"' in resp.get_data(as_text=True)  # what was typed is kept
    assert "not-an-address://whatever" in resp.get_data(as_text=True)
    resp = sign_up(client, token, "Wang Jun", "\n  \n")
    assert resp.status_code == 400 and "at least one address" in visible(resp)
    resp = sign_up(client, token, "Wang Jun", rx.url("fam"), digest_at="25:00")
    assert resp.status_code == 400 and "is not a time like 20:00" in visible(resp)
    with rt.sessions() as s:
        assert s.query(Person).filter_by(role="family").count() == 0
    assert sign_up(client, token, "Wang Jun", rx.url("fam")).status_code == 200  # still usable


def test_post_without_form_token_is_refused(rt: Runtime, client: FlaskClient, rx: Receiver) -> None:
    token = make_invite(rt, "r-301")
    data = {"name": "Wang Jun", "language": "en", "notify": rx.url("fam")}
    assert client.post(f"/family/invite/{token}", data=data).status_code == 403
    page = client.get(f"/family/invite/{token}")
    cross = client.post(
        f"/family/invite/{token}",
        data={**data, "form_token": form_field(page)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    with rt.sessions() as s:
        assert s.query(Person).filter_by(role="family").count() == 0


def test_reimporting_the_community_file_keeps_invited_family(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    """Consent given on our page is not in the file; importing the file again keeps it."""
    resp = sign_up(client, make_invite(rt, "r-301"), "Wang Jun", rx.url("invited"))
    assert resp.status_code == 200, visible(resp)
    rt.import_community(community(rx))
    kept = family(rt, "Wang Jun")
    assert (kept.consent_version, kept.resident_id) == (CONSENT_VERSION, "r-301")


def test_staff_make_an_invitation_from_the_command_line(
    db_url: str, rt: Runtime, client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from curtainwatch.cli import main

    assert main(["--database", db_url, "invite", "--resident", "r-301", "--by", "s-chen"]) == 0
    link = capsys.readouterr().out.splitlines()[0]
    assert "/family/invite/" in link
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(datetime.now(UTC))  # the command signs on the real clock
    page = client.get(link[link.index("/family/invite/") :] + "?lang=en")
    assert page.status_code == 200
    assert "Wang Shulan" in visible(page)
