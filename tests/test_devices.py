"""The devices and data-quality page (issue 4, point 5): offline and low-battery devices with
their resident, unknown devices assigned in one click (and the ingestor reads the device's
next message for its new resident), dead letters shown safely, the summary line; staff
only. Real SQLite, the real ingestor, the app's test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update
from support.web import csrf_token, post_form, signed_in, visible, web_app
from support.world import at, feed

from curtainwatch.runtime import Runtime
from monitor.access import Scope
from monitor.admin.devices import payload_text, summary
from monitor.clock import SimulatedClock
from monitor.models import AuditEntry, DeadLetter, Device, Event, UnknownDevice, User

STAFF = Scope("staff", "s-chen")


def test_offline_and_low_battery_devices_are_listed_with_their_resident(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301", {"contact": True, "battery": 80}, "04:00")
    feed(rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "05:00")
    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0, "battery": 9}, "05:30")
    feed(rt, "zigbee2mqtt/curtain-501", {"position": 0, "battery": 90}, "05:30")
    page = client.get("/devices/")
    assert page.status_code == 200
    problems = visible(page).split("Offline or low battery", 1)[1].split("Unknown devices", 1)[0]
    assert "door-301" in problems and "Wang Shulan" in problems and "offline" in problems
    # last seen at 05:00 (when it said it went offline), the page is read at 05:30
    assert "30m ago" in problems
    assert "curtain-302" in problems and "Zhao Guiying" in problems and "9%" in problems
    assert "low battery" in problems
    assert "curtain-501" not in problems  # healthy devices are not problems
    assert "1 offline, 1 low battery, 0 unknown, 0 dead letters in the last 24 h" in visible(page)


def test_last_seen_reads_as_time_ago(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "03:00")
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(at("06:00"))
    text = visible(client.get("/devices/"))
    assert "3h ago" in text


def test_unknown_device_is_assigned_and_its_next_reading_is_an_event(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/mystery-1", {"contact": False}, "07:00")
    page = client.get("/devices/")
    text = visible(page)
    assert "mystery-1" in text and "zigbee2mqtt/mystery-1" in text
    assert "0 offline, 0 low battery, 1 unknown" in text
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0

    resp = post_form(
        client,
        "/devices/unknown/assign",
        {"device_id": "mystery-1", "resident_id": "r-302", "kind": "door"},
        form_page="/devices/",
    )
    assert resp.status_code == 303
    assert "mystery-1 now belongs to r-302" in visible(client.get(resp.headers["Location"]))

    feed(rt, "zigbee2mqtt/mystery-1", {"contact": False}, "07:40")
    with rt.sessions() as s:
        events = s.execute(
            select(Event.resident_id, Event.device_id, Event.kind, Event.value)
        ).all()
        assert events == [("r-302", "mystery-1", "door", "open")]
        assert s.get(UnknownDevice, "mystery-1") is None
        device = s.get(Device, "mystery-1")
        assert device is not None and device.resident_id == "r-302" and device.kind == "door"
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "device.assign")).one()
        assert audit.actor == "s-chen" and audit.target == "mystery-1" and "r-302" in audit.detail
    assert "0 unknown" in visible(client.get("/devices/"))


def test_assigning_to_a_missing_resident_or_kind_says_why(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/mystery-2", {"contact": False}, "07:00")
    resp = post_form(
        client,
        "/devices/unknown/assign",
        {"device_id": "mystery-2", "resident_id": "r-302", "kind": "toaster"},
        form_page="/devices/",
    )
    text = visible(client.get(resp.headers["Location"]))
    assert (
        "Choose a device kind: curtain, door, light, help, motion, contact, power, water." in text
    )
    resp = post_form(
        client,
        "/devices/unknown/assign",
        {"device_id": "mystery-2", "resident_id": "", "kind": "door"},
        form_page="/devices/",
    )
    assert "Choose a resident." in visible(client.get(resp.headers["Location"]))
    with rt.sessions() as s:
        assert s.get(Device, "mystery-2") is None
        assert s.get(UnknownDevice, "mystery-2") is not None


def test_dead_letters_are_listed_newest_first_and_shown_as_text(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301", b"{not json", "05:00")
    feed(rt, "zigbee2mqtt/curtain-301", b'{"position": "<script>alert(1)</script>"}', "05:10")
    feed(rt, "zigbee2mqtt/light-301", b"\xff\xfe{bad bytes", "05:20")
    page = client.get("/devices/dead-letters")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = visible(page)
    assert "{not json" in text and "zigbee2mqtt/door-301" in text
    assert "\\xff\\xfe{bad bytes" in text  # bytes that are not text, escaped
    # newest first
    assert text.index("light-301") < text.index("curtain-301") < text.index("door-301")
    assert "3 dead letters in the last 24 h" in visible(client.get("/devices/"))

    only = visible(client.get("/devices/dead-letters?topic=curtain"))
    assert "curtain-301" in only and "zigbee2mqtt/door-301" not in only


def test_dead_letter_reasons_are_in_the_readers_language(rt: Runtime) -> None:
    """The reason, stored in English, is shown in Chinese to staff who read Chinese; the
    payload's own values and the topic stay as they came."""
    feed(rt, "zigbee2mqtt/curtain-301", b'{"position": "half"}', "05:10")
    feed(rt, "zigbee2mqtt/door-301", b'{"contact": [true]}', "05:11")
    with rt.sessions() as s:
        errors = set(s.scalars(select(DeadLetter.error)))
    assert errors == {
        'zigbee2mqtt/curtain-301: "position" must be a number, got "half"',
        'zigbee2mqtt/door-301: "contact" must be true or false, got an array',
    }
    with rt.sessions.begin() as s:
        s.execute(update(User).where(User.username == "staff").values(language="zh-CN"))
    text = visible(signed_in(web_app(rt), "staff").get("/devices/dead-letters"))
    assert 'zigbee2mqtt/curtain-301："position" 应为数字，实际是 "half"' in text
    assert "must be a number" not in text
    assert "JSON 数组" in text and "an array" not in text


def test_long_dead_letters_are_cut_and_paginated(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301", b"[" + b"x" * 5000, "05:00")
    for i in range(55):
        feed(rt, f"zigbee2mqtt/spam-{i}", b"nope", "05:01")
    first = visible(client.get("/devices/dead-letters"))
    assert "Page 1 of 2" in first and "spam-54" in first and "door-301" not in first
    second = visible(client.get("/devices/dead-letters?page=2"))
    assert "zigbee2mqtt/door-301" in second
    assert "Cut: the payload has 5001 bytes." in second
    assert "[" + "x" * 399 + "…" in second and "x" * 400 not in second


def test_payload_text_escapes_what_is_not_text() -> None:
    assert payload_text(b"ok\n\tdone") == ("ok\n\tdone", False)
    assert payload_text(b"\x00\x1b[31m") == ("\\u0000\\u001b[31m", False)
    assert payload_text(b"\xc3\x28") == ("\\xc3(", False)
    assert payload_text("窗帘".encode() * 300, limit=10) == ("窗帘" * 5, True)


def test_all_devices_list_filters(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "05:00")
    everything = visible(client.get("/devices/all"))
    assert "9 devices" in everything
    for device in ("curtain-301", "door-301", "light-301", "card-301", "curtain-302", "door-501"):
        assert device in everything
    doors = visible(client.get("/devices/all?kind=door"))
    assert "2 devices" in doors and "door-301" in doors and "curtain-301" not in doors
    offline = visible(client.get("/devices/all?status=offline"))
    assert "1 devices" in offline and "door-301" in offline
    b5 = visible(client.get("/devices/all?building=5"))
    assert "3 devices" in b5 and "door-501" in b5 and "door-301" not in b5
    found = visible(client.get("/devices/all?q=Zhao"))
    assert "2 devices" in found and "curtain-302" in found


def test_summary_counts_in_a_constant_number_of_queries(rt: Runtime) -> None:
    feed(rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "05:00")
    feed(rt, "zigbee2mqtt/ghost", {"contact": True}, "05:00")
    feed(rt, "zigbee2mqtt/door-501", b"{", "05:00")
    with rt.sessions() as s:
        got = summary(s, STAFF, rt.clock.now())
    assert (got.offline, got.low_battery, got.unknown, got.dead_letters, got.devices) == (
        1,
        0,
        1,
        1,
        9,
    )


@pytest.mark.parametrize("username", ["vol3", "fam301"])
@pytest.mark.parametrize("path", ["/devices/", "/devices/all", "/devices/dead-letters"])
def test_volunteers_and_family_may_not_see_the_devices_pages(
    rt: Runtime, username: str, path: str
) -> None:
    client = signed_in(web_app(rt), username)
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("username", ["vol3", "fam301"])
def test_volunteers_and_family_may_not_assign_devices(rt: Runtime, username: str) -> None:
    feed(rt, "zigbee2mqtt/mystery-1", {"contact": False}, "07:00")
    client = signed_in(web_app(rt), username)
    token = csrf_token(client, "/login")
    resp = client.post(
        "/devices/unknown/assign",
        data={
            "csrf_token": token,
            "device_id": "mystery-1",
            "resident_id": "r-301",
            "kind": "door",
        },
    )
    assert resp.status_code == 403
    with rt.sessions() as s:
        assert s.get(Device, "mystery-1") is None


def test_assign_without_csrf_token_is_refused(rt: Runtime) -> None:
    feed(rt, "zigbee2mqtt/mystery-1", {"contact": False}, "07:00")
    client = signed_in(web_app(rt), "staff")
    resp = client.post(
        "/devices/unknown/assign",
        data={"device_id": "mystery-1", "resident_id": "r-301", "kind": "door"},
    )
    assert resp.status_code == 400
    with rt.sessions() as s:
        assert s.get(Device, "mystery-1") is None


def test_signed_out_visitors_are_sent_to_sign_in(rt: Runtime) -> None:
    client = web_app(rt).test_client()
    resp = client.get("/devices/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_dead_letter_rows_are_stored_as_the_ingestor_received_them(rt: Runtime) -> None:
    # The page reads what the ingestor stored: guard the link between the two.
    feed(rt, "zigbee2mqtt/door-301", b"{not json", "05:00")
    with rt.sessions() as s:
        row = s.scalars(select(DeadLetter)).one()
        assert row.payload == b"{not json" and re.search("JSON|json", row.error)


def _statements_for(rt: Runtime, client: FlaskClient, path: str) -> int:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(rt.db, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(rt.db, "before_cursor_execute", count)
    return len(seen)


def test_query_count_does_not_grow_with_devices(rt: Runtime) -> None:
    client = signed_in(web_app(rt), "staff")
    paths = ("/devices/", "/devices/all", "/devices/dead-letters")

    def broken(first: int, last: int) -> None:
        for i in range(first, last):
            feed(rt, f"zigbee2mqtt/ghost-{i}", {"contact": True}, "05:00")
            feed(rt, f"zigbee2mqtt/ghost-{i}", b"{", "05:00")
        feed(rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "05:00")

    broken(0, 2)
    few = {p: _statements_for(rt, client, p) for p in paths}
    with rt.sessions.begin() as s:
        for i in range(40):
            s.add(
                Device(
                    id=f"extra-{i}",
                    resident_id="r-501",
                    kind="door",
                    created_at=at("00:00"),
                    battery=5.0,
                )
            )
    rt.ingestor.reload_registry()
    broken(2, 30)
    many = {p: _statements_for(rt, client, p) for p in paths}
    assert many == few
    text = visible(client.get("/devices/"))
    assert "1 offline, 40 low battery, 30 unknown, 30 dead letters" in text
