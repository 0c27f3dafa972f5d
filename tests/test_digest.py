"""The family's daily digest: what the day showed and how alerts ended, once a day, only to
family members who consented and have not opted out, in their language."""

from __future__ import annotations

import pytest
from support.receiver import Receiver
from support.watch import alerts
from support.world import World, advance, at, community, feed, person, resident

from alerts.lifecycle import claim, resolve
from curtainwatch.runtime import Runtime


@pytest.fixture
def world(rx: Receiver) -> World:
    """Wang Shulan with a curtain, a light and a help card and no routines; her volunteer,
    and three relatives with a digest at 20:00: in English, in Chinese (the default), and
    one who never consented. No ladder, no users."""
    digest = {"role": "family", "resident": "r-301", "digest": "20:00"}
    return World(
        community(
            residents=[resident(devices=("curtain", "light", "help"), routines=None)],
            people=[
                person("v-li", language=None),
                person("f-wang", digest="20:00"),
                person("f-zh", name="Wang Li", consent="2026-11-20", **digest),
                person("f-none", name="No Consent", **digest),
            ],
            escalation=None,
            notify=rx.url,
        ),
        users=False,
    )


def test_daily_digest_tells_the_day_and_how_alerts_ended(rt: Runtime, rx: Receiver) -> None:
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:42")
    advance(rt, "07:42")
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "10:00")
    advance(rt, "10:00")
    [a] = alerts(rt, kind="help")
    with rt.sessions.begin() as s:
        claim(s, a.id, "v-li", at("10:02"))
        resolve(s, a.id, "v-li", "fine", "card flipped by accident", at("10:20"))
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "18:10")
    advance(rt, "18:10")

    advance(rt, "19:59")
    assert rx.to("f-wang") == []
    advance(rt, "20:00")
    [digest] = rx.to("f-wang")
    assert digest["title"] == "Wang Shulan 11-23"
    assert digest["message"].splitlines()[:-1] == [
        "curtain opened 07:42, light on 18:10",
        "10:00 asked for help (help card): Li Ming went: all fine (card flipped by accident)",
        "All is well.",
    ]
    [zh] = rx.to("f-zh")
    assert zh["message"].splitlines()[0] == "拉开窗帘 07:42，开灯 18:10"
    assert zh["message"].splitlines()[-2] == "一切安好。"
    assert zh["message"].splitlines()[-1].startswith("停止接收：")
    assert rx.to("f-none") == []  # no recorded consent, no digest

    feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "21:05")  # after the digest
    advance(rt, "21:05")
    advance(rt, "23:00")
    assert len(rx.to("f-wang")) == 1  # once a day
    advance(rt, "20:00", "2026-11-24")
    assert len(rx.to("f-wang")) == 2
    assert rx.to("f-wang")[1]["message"].splitlines()[0] == "No activity recorded today."
    assert "Stop these messages: " in digest["message"].splitlines()[-1]


def test_opted_out_family_gets_no_digest(rt: Runtime, rx: Receiver) -> None:
    from monitor.models import Person

    with rt.sessions.begin() as s:
        person = s.get(Person, "f-wang")
        assert person is not None
        person.opted_out_at = at("12:00")
    advance(rt, "20:00")
    assert rx.to("f-wang") == [] and len(rx.to("f-zh")) == 1
