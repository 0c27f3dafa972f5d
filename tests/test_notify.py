"""The alert flow's first part: the escalation ladder and notification delivery through
Apprise to a local HTTP receiver (standing in for phone push services)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.receiver import Receiver
from support.watch import alerts
from support.web import signed_in, visible, web_app
from support.world import (
    CURTAIN_OPEN,
    PASSWORD,
    World,
    advance,
    at,
    community,
    feed,
    person,
    resident,
)

from alerts.lifecycle import claim, resolve
from curtainwatch.runtime import Runtime
from monitor.admin.users import create_user
from monitor.clock import SimulatedClock
from monitor.models import Delivery


@pytest.fixture
def world(rx: Receiver) -> World:
    """Wang Shulan with a curtain (seen shut at 06:00) and a help card; her volunteer's
    first address fails; a volunteer of another building, staff, and family with and
    without consent; no users."""
    return World(
        community(
            residents=[resident(devices=("curtain", "help"), routines=[CURTAIN_OPEN])],
            people=[
                person("v-li", notify=[rx.url("fail-li"), rx.url("v-li")]),
                person("v-zhou", name="Zhou", language=None),
                person("s-chen", language=None),
                person("f-wang", language=None),
                person("f-no", name="No Consent", role="family", resident="r-301"),
            ],
            notify=rx.url,
        ),
        users=False,
        readings=[("zigbee2mqtt/curtain-301", {"position": 0})],
        settings={"base_url": "https://cw.example"},
    )


def test_ladder_volunteer_then_staff_then_consenting_family(rt: Runtime, rx: Receiver) -> None:
    advance(rt, "09:15")
    [v] = rx.to("v-li")
    assert v["title"] == "Wang Shulan (3-301): curtain not opened"
    assert "since 11-23 09:15" in v["message"] and "https://cw.example/m/" in v["message"]
    advance(rt, "09:20")  # nothing new, nothing repeated
    assert (len(rx.to("v-li")), rx.to("s-chen"), rx.to("v-zhou")) == (1, [], [])
    advance(rt, "09:30")
    [s] = rx.to("s-chen")
    assert s["title"] == "Wang Shulan (3-301): 窗帘未按时拉开"  # staff language defaults to zh-CN
    assert "自 11-23 09:15" in s["message"]
    advance(rt, "09:45")
    [f] = rx.to("f-wang")
    assert "/m/" not in f["message"]  # family have no alert page to act on, only a stop link
    assert "/family/stop/" in f["message"]
    advance(rt, "12:00")
    assert rx.to("f-no") == [] and rx.to("v-zhou") == []
    assert (len(rx.to("v-li")), len(rx.to("s-chen")), len(rx.to("f-wang"))) == (1, 1, 1)


def test_claim_stops_escalation_and_resolve_records_who_and_outcome(
    rt: Runtime, rx: Receiver
) -> None:
    advance(rt, "09:15")
    [a] = alerts(rt)
    with rt.sessions.begin() as s:
        assert claim(s, a.id, "v-li", at("09:17"))
        assert not claim(s, a.id, "v-zhou", at("09:18"))  # already claimed
    advance(rt, "10:30")
    assert rx.to("s-chen") == [] and rx.to("f-wang") == []
    with rt.sessions.begin() as s:
        assert resolve(s, a.id, "v-li", "fine", "overslept", at("09:40"))
    [a] = alerts(rt)
    assert (a.status, a.claimed_by, a.resolved_by, a.outcome, a.note) == (
        "resolved",
        "v-li",
        "v-li",
        "fine",
        "overslept",
    )


def test_failing_channel_is_retried_then_shown_as_a_delivery_problem(
    rt: Runtime, rx: Receiver
) -> None:
    advance(rt, "09:15")
    assert len(rx.to("v-li")) == 1  # the other channel delivered at once
    t = at("09:15")
    for wait in (30, 120, 600):  # the back-off steps
        t += timedelta(seconds=wait)
        assert isinstance(rt.clock, SimulatedClock)
        rt.clock.set(t)
        rt.notifier.send_due()
    assert rx.refused == 4
    [a] = alerts(rt)
    assert a.delivery_problem is not None
    assert a.delivery_problem.startswith("could not reach v-li via json after 4 tries")
    assert "error=500" in a.delivery_problem
    with rt.sessions() as s:
        statuses = sorted((d.person_id, d.channel, d.status, d.attempts) for d in s.query(Delivery))
    assert statuses == [("v-li", 0, "gave_up", 4), ("v-li", 1, "sent", 1)]
    assert len(rx.to("v-li")) == 1  # never repeated

    # Staff see it on the alert, by the person's name, in their own language.
    with rt.sessions.begin() as s:
        for name, language in (("chen", "zh-CN"), ("admin", "en")):
            create_user(s, name, PASSWORD, "staff", t, person_id=None, language=language)
    app = web_app(rt)
    said = {
        "chen": "消息发送出现问题：经 json 发给 Li Ming，试了 4 次仍未送达",
        "admin": "Delivery problem: could not reach Li Ming via json after 4 tries",
    }
    for name, text in said.items():
        client = signed_in(app, name)
        for page in ("/alerts/", f"/alerts/{a.id}"):
            assert text in visible(client.get(page)), (name, page)


def test_device_alerts_go_to_staff_only(rt: Runtime, rx: Receiver) -> None:
    assert isinstance(rt.clock, SimulatedClock)
    feed(rt, "zigbee2mqtt/curtain-301/availability", b"offline", "06:30")
    rt.clock.set(at("06:31"))
    rt.engine.check_devices()
    for hm in ("06:31", "07:00", "08:00"):
        advance(rt, hm)
    assert len(rx.to("s-chen")) == 1
    assert rx.to("v-li") == [] and rx.to("f-wang") == []
