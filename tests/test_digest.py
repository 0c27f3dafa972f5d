"""The family's daily digest: what the day showed and how alerts ended, once a day, only to
family members who consented and have not opted out, in their language."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from support.receiver import Receiver, receiver
from support.watch import alerts, local

from alerts.lifecycle import claim, resolve
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from sensors.ingest import Message

DAY = "2026-11-23"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def rt(db_url: str, rx: Receiver) -> Runtime:
    runtime = Runtime(Settings(database_url=db_url), SimulatedClock(local(DAY, "06:00")))
    runtime.import_community(f"""
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices: [{{id: curtain-301, kind: curtain}}, {{id: light-301, kind: light}},
              {{id: card-301, kind: help}}]
people:
  - {{id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], notify: ["{rx.url("v-li")}"]}}
  - {{id: f-wang, name: Wang Jun, role: family, resident: r-301, consent: "2026-11-20",
      language: en, digest: "20:00", notify: ["{rx.url("f-wang")}"]}}
  - {{id: f-zh, name: Wang Li, role: family, resident: r-301, consent: "2026-11-20",
      digest: "20:00", notify: ["{rx.url("f-zh")}"]}}
  - {{id: f-none, name: No Consent, role: family, resident: r-301, digest: "20:00",
      notify: ["{rx.url("f-none")}"]}}
""")
    return runtime


def feed(rt: Runtime, hm: str, topic: str, payload: object) -> None:
    when = local(DAY, hm)
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(when)
    rt.ingestor.process([Message(topic, json.dumps(payload).encode(), when.astimezone(UTC))])
    rt.notify()


def at(rt: Runtime, when: datetime) -> None:
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(when)
    rt.notify()


def test_daily_digest_tells_the_day_and_how_alerts_ended(rt: Runtime, rx: Receiver) -> None:
    feed(rt, "07:42", "zigbee2mqtt/curtain-301", {"position": 100})
    feed(rt, "10:00", "zigbee2mqtt/card-301", {"contact": False})
    [a] = alerts(rt, kind="help")
    with rt.sessions.begin() as s:
        claim(s, a.id, "v-li", local(DAY, "10:02"))
        resolve(s, a.id, "v-li", "fine", "card flipped by accident", local(DAY, "10:20"))
    feed(rt, "18:10", "zigbee2mqtt/light-301", {"state": "ON"})

    at(rt, local(DAY, "19:59"))
    assert rx.to("f-wang") == []
    at(rt, local(DAY, "20:00"))
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

    feed(rt, "21:05", "zigbee2mqtt/curtain-301", {"position": 0})  # after the digest
    at(rt, local(DAY, "23:00"))
    assert len(rx.to("f-wang")) == 1  # once a day
    at(rt, local("2026-11-24", "20:00"))
    assert len(rx.to("f-wang")) == 2
    assert rx.to("f-wang")[1]["message"].splitlines()[0] == "No activity recorded today."
    assert "Stop these messages: " in digest["message"].splitlines()[-1]


def test_opted_out_family_gets_no_digest(rt: Runtime, rx: Receiver) -> None:
    from monitor.models import Person

    with rt.sessions.begin() as s:
        person = s.get(Person, "f-wang")
        assert person is not None
        person.opted_out_at = local(DAY, "12:00")
    at(rt, local(DAY, "20:00"))
    assert rx.to("f-wang") == [] and len(rx.to("f-zh")) == 1
