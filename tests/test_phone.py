"""The one-tap phone page (issue 3, point 4): the link in a real notification (read from a
local HTTP receiver standing in for the push service) opens the page; "I'm going" claims
and stops the ladder; resolve records outcome, note and who. Expired, tampered and other
people's links, volunteers for other buildings, family members, double claims and
cross-site posts are refused with a clear page and the right status code. Real SQLite
database, simulated clock, Flask's test client."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.receiver import Receiver
from support.watch import alerts
from support.web import form_field, visible
from support.world import CURTAIN_OPEN, World, advance, at, community, feed, person, resident
from werkzeug.test import TestResponse

from alerts.tokens import (
    LINK_MAX_AGE,
    LinkExpired,
    LinkTampered,
    make_link_token,
    read_link_token,
)
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.models import Alert
from web.forms import form_token
from web.phone import FORM

MISSED = at("09:15")  # the curtain_open window (07:00-09:00, grace 15 min) is missed


@pytest.fixture
def world(rx: Receiver) -> World:
    """Wang Shulan (3-301) with a curtain, seen shut at 06:00, and the morning window; two
    volunteers of building 3 (Li Ming reads English, Wu Hua, who also covers building 4,
    Chinese), one of building 5, staff and consenting family; no users; browsers that ask
    for no language."""
    return World(
        community(
            residents=[resident(devices=("curtain",), routines=[CURTAIN_OPEN])],
            people=[
                person("v-li"),
                person("v-wu", name="Wu Hua", role="volunteer", buildings=["3", "4"]),
                person("v-zhou"),
                person("s-chen"),
                person("f-wang"),
            ],
            notify=rx.url,
        ),
        users=False,
        readings=[("zigbee2mqtt/curtain-301", {"position": 0})],
        settings={"base_url": "https://cw.example"},
        language=None,
    )


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    """The world at MISSED: the alert is raised and the volunteers of building 3 notified."""
    advance(rt, MISSED)
    return rt


def link(rx: Receiver, person: str) -> str:
    """The path of the link in the last message `person` received."""
    [*_, message] = rx.to(person)
    m = re.search(r"https://cw\.example(/m/[A-Za-z0-9_.\-]+)", message["message"])
    assert m, message
    return m.group(1)


def claim(client: FlaskClient, path: str, **headers: str) -> TestResponse:
    token = form_field(client.get(path))
    return client.post(f"{path}/claim", data={"form_token": token}, headers=headers)


def the_alert(rt: Runtime) -> Alert:
    [a] = alerts(rt)
    return a


def test_link_from_a_notification_opens_the_page_in_the_persons_language(
    client: FlaskClient, rx: Receiver
) -> None:
    path = link(rx, "v-li")
    resp = client.get(path)
    assert resp.status_code == 200
    text = visible(resp)
    for shown in (
        "Wang Shulan",
        "3-301",
        "curtain not opened",
        "Since 11-23 09:15 (0 min ago)",
        "Nobody has said they are going yet.",
        "I'm going",
        "This link is for Li Ming.",
    ):
        assert shown in text
    page = resp.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"

    wu = link(rx, "v-wu")
    assert wu != path  # every person gets a link of their own
    text = visible(client.get(wu))
    assert "窗帘未按时拉开" in text and "我去看看" in text and "还没有人认领" in text


def test_an_alerts_detail_is_in_the_persons_language_and_local_time(
    rt: Runtime, app: Flask, client: FlaskClient
) -> None:
    """A dead sensor's alert says since when, in the reader's words and the resident's
    zone (09:15 in Shanghai is 01:15 UTC)."""
    assert isinstance(rt.clock, SimulatedClock)
    heard = rt.clock.now()  # MISSED: the curtain reports its battery, then falls silent
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 0, "battery": 90}, heard)
    rt.clock.set(heard + timedelta(hours=25, minutes=1))
    rt.engine.check_devices()
    [dead] = alerts(rt, kind="device_offline")
    assert dead.detail == "silent since 2026-11-23 01:15 UTC"  # the English text kept
    key = app.config["LINK_KEY"]
    for pid, said in (
        ("v-wu", "自 11-23 09:15 起未再上报"),
        ("v-li", "silent since 11-23 09:15"),
    ):
        text = visible(client.get(f"/m/{make_link_token(key, pid, dead.id, rt.clock.now())}"))
        assert said in text, text
        assert "01:15" not in text


def test_claim_from_the_phone_stops_escalation(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    path = link(rx, "v-li")
    advance(rt, "09:17")
    resp = claim(client, path)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(path)
    a = the_alert(rt)
    assert (a.status, a.claimed_by, a.claimed_at) == ("claimed", "v-li", at("09:17"))

    text = visible(client.get(path))
    assert "You are going (since 11-23 09:17)." in text
    assert "What did you find?" in text and "False alarm: away from home" in text
    assert "I'm going" not in text
    # The other volunteer sees who is going, and no button.
    text = visible(client.get(link(rx, "v-wu")))
    assert "Li Ming 正在前往（11-23 09:17）" in text and "我去看看" not in text

    assert claim(client, path).status_code == 303  # a second tap is harmless
    advance(rt, "09:50")  # past the staff (15 min) and family (30 min) steps
    assert rx.to("s-chen") == [] and rx.to("f-wang") == []
    assert len(rx.to("v-li")) == 1


def test_resolve_records_outcome_note_and_who(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    path = link(rx, "v-li")
    assert claim(client, path).status_code == 303
    token = form_field(client.get(path))

    resp = client.post(f"{path}/resolve", data={"form_token": token, "outcome": "bogus"})
    assert resp.status_code == 400 and "Please choose what you found." in visible(resp)
    resp = client.post(
        f"{path}/resolve",
        data={"form_token": token, "outcome": "fine", "note": "x" * 501},
    )
    assert resp.status_code == 400
    assert "The note is too long (at most 500 characters)." in visible(resp)
    assert the_alert(rt).status == "claimed"

    advance(rt, "09:40")
    note = "Fell in the kitchen <b>, helped her up; daughter called."
    resp = client.post(
        f"{path}/resolve",
        data={"form_token": token, "outcome": "needed_help", "note": note},
    )
    assert resp.status_code == 303
    a = the_alert(rt)
    assert (a.status, a.outcome, a.note, a.resolved_by, a.resolved_at) == (
        "resolved",
        "needed_help",
        note,
        "v-li",
        at("09:40"),
    )
    resp = client.get(path)
    text = visible(resp)
    assert "Resolved by Li Ming at 11-23 09:40: Needed help." in text and note in text
    assert "&lt;b&gt;" in resp.get_data(as_text=True)  # the note is escaped, not markup
    assert "What did you find?" not in text

    resp = client.post(f"{path}/resolve", data={"form_token": token, "outcome": "fine", "note": ""})
    assert resp.status_code == 409 and "Li Ming has already resolved this alert." in visible(resp)
    assert the_alert(rt).outcome == "needed_help"


def test_resolve_before_claiming_is_refused(rt: Runtime, client: FlaskClient, rx: Receiver) -> None:
    path = link(rx, "v-li")
    token = form_field(client.get(path))
    resp = client.post(f"{path}/resolve", data={"form_token": token, "outcome": "fine"})
    assert resp.status_code == 409 and "Tap “I'm going” first" in visible(resp)
    assert the_alert(rt).status == "open"


def test_expired_link_is_refused_with_a_clear_page(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    path, wu = link(rx, "v-li"), link(rx, "v-wu")
    token = form_field(client.get(path))
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(MISSED + LINK_MAX_AGE - timedelta(minutes=1))
    assert client.get(path).status_code == 200  # still good just before a day has passed
    rt.clock.set(MISSED + LINK_MAX_AGE + timedelta(minutes=1))

    resp = client.get(path)
    assert resp.status_code == 410
    assert "This link has expired, ask staff for a new one." in visible(resp)
    assert "Wang Shulan" not in visible(resp)
    resp = client.post(f"{path}/claim", data={"form_token": token})
    assert resp.status_code == 410
    assert the_alert(rt).status == "open"
    resp = client.get(wu)  # in the person's own language
    assert resp.status_code == 410 and "链接已过期，请联系工作人员获取新链接。" in visible(resp)


def _parts(path: str) -> tuple[str, str]:
    payload, signature = path.removeprefix("/m/").split(".")
    return payload, signature


def _b64(data: object) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_tampered_link_is_refused(rt: Runtime, client: FlaskClient, rx: Receiver) -> None:
    path = link(rx, "v-li")
    token = form_field(client.get(path))
    payload, signature = _parts(path)
    # The first character, not the last: the last one's low bits are base64 padding, which
    # decoders drop, so "…A" -> "…B" can leave the same signature (a flaky test once).
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    a = the_alert(rt)
    issued = int(MISSED.timestamp())
    other_key = make_link_token("not-our-key", "v-li", a.id, MISSED)
    for bad in (
        f"/m/{payload}.{flipped}",  # signature altered
        f"/m/{payload}",  # cut off when copied
        f"/m/{_b64(['v-li', a.id, issued + 3600 * 24 * 30])}.{signature}",  # extended
        f"/m/{other_key}",  # signed with another key
        "/m/hello",
    ):
        resp = client.get(bad)
        assert resp.status_code == 403, bad
        text = visible(resp)
        assert "This link is not valid" in text and "链接无效" in text  # nobody known: both
        assert "Wang Shulan" not in text
    resp = client.post(f"/m/{payload}.{flipped}/claim", data={"form_token": token})
    assert resp.status_code == 403 and "This link is not valid" in visible(resp)
    assert the_alert(rt).status == "open"


def test_one_persons_token_cannot_act_as_another(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    li, wu = link(rx, "v-li"), link(rx, "v-wu")
    # v-li's payload rewritten to name v-wu, keeping v-li's signature: refused.
    payload, signature = _parts(li)
    person, alert_id, issued = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    assert person == "v-li"
    swapped = f"/m/{_b64(['v-wu', alert_id, issued])}.{signature}"
    resp = client.post(f"{swapped}/claim", data={"form_token": form_field(client.get(li))})
    assert resp.status_code == 403 and "This link is not valid" in visible(resp)
    # v-li's form field does not fit v-wu's page.
    li_form = form_field(client.get(li))
    resp = client.post(f"{wu}/claim", data={"form_token": li_form})
    assert resp.status_code == 403
    assert the_alert(rt).status == "open"
    # Each link acts only as its own person.
    assert claim(client, wu).status_code == 303
    assert the_alert(rt).claimed_by == "v-wu"
    resp = client.post(f"{li}/resolve", data={"form_token": li_form, "outcome": "fine"})
    assert resp.status_code == 409 and "Wu Hua is going" in visible(resp)
    assert the_alert(rt).status == "claimed"


def test_volunteer_cannot_claim_for_a_building_they_do_not_cover(
    rt: Runtime, app: Flask, client: FlaskClient, rx: Receiver
) -> None:
    assert rx.to("v-zhou") == []  # building 5 only: never notified
    key = app.config["LINK_KEY"]
    assert key == rt.notifier.link_key  # the page checks what the notifier signs
    path = f"/m/{make_link_token(key, 'v-zhou', the_alert(rt).id, rt.clock.now())}"
    resp = client.get(path)
    assert resp.status_code == 403
    assert "This alert is for building 3, which you do not cover." in visible(resp)
    assert "Wang Shulan" not in visible(resp)
    with app.test_request_context():
        token = form_token(FORM, path.removeprefix("/m/"))
    resp = client.post(f"{path}/claim", data={"form_token": token})
    assert resp.status_code == 403 and "which you do not cover" in visible(resp)
    assert the_alert(rt).status == "open"


def test_double_claim_shows_who_is_going(rt: Runtime, client: FlaskClient, rx: Receiver) -> None:
    li, wu = link(rx, "v-li"), link(rx, "v-wu")
    wu_form = form_field(client.get(wu))  # Wu has the page open...
    assert claim(client, li).status_code == 303  # ...while Li taps first
    resp = client.post(f"{wu}/claim", data={"form_token": wu_form})
    assert resp.status_code == 409
    text = visible(resp)
    assert "Li Ming 正在前往" in text and "Li Ming 已先认领此提醒" in text
    assert "返回提醒页面" in text  # a way back to the (read-only) alert page
    assert the_alert(rt).claimed_by == "v-li"


def test_family_unknown_and_staff(
    rt: Runtime, app: Flask, client: FlaskClient, rx: Receiver
) -> None:
    key, now, alert_id = app.config["LINK_KEY"], rt.clock.now(), the_alert(rt).id

    family = f"/m/{make_link_token(key, 'f-wang', alert_id, now)}"
    resp = client.get(family)
    assert resp.status_code == 403
    assert "This page is for volunteers and staff" in visible(resp)
    assert "Wang Shulan" not in visible(resp)
    with app.test_request_context():
        token = form_token(FORM, family.removeprefix("/m/"))
    assert client.post(f"{family}/claim", data={"form_token": token}).status_code == 403

    unknown = client.get(f"/m/{make_link_token(key, 'v-gone', alert_id, now)}")
    assert unknown.status_code == 403
    assert "This link is not for anyone on our list" in visible(unknown)
    missing = client.get(f"/m/{make_link_token(key, 'v-li', alert_id + 99, now)}")
    assert missing.status_code == 404 and "Alert not found" in visible(missing)
    assert the_alert(rt).status == "open"

    # Staff cover every building: the link in their (escalated) message claims.
    advance(rt, MISSED + timedelta(minutes=15))
    resp = claim(client, link(rx, "s-chen"))
    assert resp.status_code == 303 and the_alert(rt).claimed_by == "s-chen"


def test_post_without_the_form_token_is_refused(
    rt: Runtime, client: FlaskClient, rx: Receiver
) -> None:
    path = link(rx, "v-li")
    for data, headers in (
        ({}, {}),
        ({"form_token": "0" * 64}, {}),
        ({"form_token": form_field(client.get(path))}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        resp = client.post(f"{path}/claim", data=data, headers=headers)
        assert resp.status_code == 403
        assert "This request did not come from the alert page" in visible(resp)
    assert the_alert(rt).status == "open"

    assert claim(client, path, **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    resp = client.post(f"{path}/resolve", data={"outcome": "fine", "note": "forged"})
    assert resp.status_code == 403 and "nothing was changed" in visible(resp)
    assert the_alert(rt).status == "claimed"


# The token itself, on the injected clock.


def test_token_round_trip_and_expiry_on_the_injected_clock() -> None:
    t0 = datetime(2026, 11, 23, 1, 15, tzinfo=UTC)
    token = make_link_token("k", "v-li", 7, t0)
    assert read_link_token("k", token, t0) == ("v-li", 7)
    assert read_link_token("k", token, t0 + LINK_MAX_AGE) == ("v-li", 7)
    with pytest.raises(LinkExpired) as e:
        read_link_token("k", token, t0 + LINK_MAX_AGE + timedelta(seconds=1))
    assert (e.value.person_id, e.value.alert_id, e.value.issued_at) == ("v-li", 7, t0)
    short = timedelta(minutes=30)
    with pytest.raises(LinkExpired):
        read_link_token("k", token, t0 + timedelta(minutes=31), max_age=short)
    with pytest.raises(LinkTampered):
        read_link_token("other", token, t0)
    with pytest.raises(LinkTampered):  # issued well in the future of this clock
        read_link_token("k", token, t0 - timedelta(hours=1))
    assert read_link_token("k", token, t0 - timedelta(minutes=4)) == ("v-li", 7)  # skew
    assert timedelta(hours=24) == LINK_MAX_AGE
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token) and len(token) < 80
