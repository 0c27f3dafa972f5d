"""The escalation ladder's judgement: duty rotas, quiet hours, silences, reminders after a
claim, and a burst of missed windows told once to staff. A local HTTP receiver stands in
for the phone push services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from support.receiver import Receiver, receiver
from support.watch import alerts, local

from alerts.lifecycle import claim
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Silence
from sensors.ingest import Message

DAY = "2026-11-23"  # a Monday


def community(rx: Receiver, residents: int = 1, volunteer_extra: str = "") -> str:
    homes = "".join(
        f"""
  - id: r-{i}
    name: Resident {i}
    building: "3"
    unit: "{300 + i}"
    devices: [{{id: curtain-{i}, kind: curtain}}, {{id: card-{i}, kind: help}}]
    routines: [{{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}}]"""
        for i in range(residents)
    )
    return f"""
timezone: Asia/Shanghai
residents:{homes}
people:
  - {{id: v-day, name: Day, role: volunteer, buildings: ["3"], language: en,
      rota: [{{days: mon-fri, from: "08:00", to: "20:00"}}], notify: ["{rx.url("v-day")}"]
      {volunteer_extra}}}
  - {{id: v-night, name: Night, role: volunteer, buildings: ["3"], language: en,
      rota: [{{days: mon-sun, from: "20:00", to: "08:00"}}], notify: ["{rx.url("v-night")}"]}}
  - {{id: s-chen, name: Chen, role: staff, language: en, notify: ["{rx.url("s-chen")}"]}}
escalation:
  - {{after: 0m, notify: volunteers}}
  - {{after: 15m, notify: staff}}
"""


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def start(db_url: str, text: str, residents: int = 1) -> Runtime:
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(local(DAY, "06:00")))
    rt.import_community(text)
    rt.ingestor.process(
        [
            Message(
                f"zigbee2mqtt/{d}-{i}",
                json.dumps({"contact": True} if d == "card" else {"position": 0}).encode(),
                local(DAY, "06:00").astimezone(UTC),
            )
            for i in range(residents)
            for d in ("curtain", "card")
        ]
    )
    return rt


def at(rt: Runtime, when: datetime) -> None:
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(when)
    rt.engine.settle_due()
    rt.notify()


def test_only_the_volunteer_on_duty_hears(db_url: str, rx: Receiver) -> None:
    rt = start(db_url, community(rx))
    at(rt, local(DAY, "09:15"))
    assert (len(rx.to("v-day")), rx.to("v-night")) == (1, [])


def test_nobody_on_duty_means_staff_hear_at_once(db_url: str, rx: Receiver) -> None:
    # Saturday: v-day is off, and v-night's spell has ended at 08:00.
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(local("2026-11-28", "06:00")))
    rt.import_community(community(rx))
    rt.ingestor.process(
        [
            Message(
                "zigbee2mqtt/curtain-0",
                b'{"position": 0}',
                local("2026-11-28", "06:00").astimezone(UTC),
            )
        ]
    )
    at(rt, local("2026-11-28", "09:15"))
    assert rx.to("v-day") == rx.to("v-night") == []
    assert len(rx.to("s-chen")) == 1


def test_quiet_hours_hold_a_missed_routine_but_not_help(db_url: str, rx: Receiver) -> None:
    rt = start(db_url, community(rx, volunteer_extra=', quiet_hours: {from: "09:00", to: "10:00"}'))
    at(rt, local(DAY, "09:15"))
    assert rx.to("v-day") == []  # held: v-day is quiet until 10:00
    rt.ingestor.process(
        [Message("zigbee2mqtt/card-0", b'{"contact": false}', local(DAY, "09:20").astimezone(UTC))]
    )
    at(rt, local(DAY, "09:20"))
    [help_msg] = rx.to("v-day")
    assert "asked for help" in help_msg["title"]
    at(rt, local(DAY, "10:00"))
    assert [m["title"].split(": ")[1] for m in rx.to("v-day")] == [
        "asked for help (help card)",
        "curtain not opened",
    ]


def test_silence_holds_the_ladder_until_it_ends_but_never_help(db_url: str, rx: Receiver) -> None:
    rt = start(db_url, community(rx))
    with rt.sessions.begin() as s:
        s.add(
            Silence(
                building="3",
                starts_at=local(DAY, "08:00"),
                ends_at=local(DAY, "11:00"),
                reason="planned power cut",
                created_by="s-chen",
                created_at=local(DAY, "07:00"),
            )
        )
    at(rt, local(DAY, "09:15"))
    rt.ingestor.process(
        [Message("zigbee2mqtt/card-0", b'{"contact": false}', local(DAY, "09:30").astimezone(UTC))]
    )
    at(rt, local(DAY, "09:30"))
    assert [m["title"].split(": ")[1] for m in rx.to("v-day")] == ["asked for help (help card)"]
    assert rx.to("s-chen") == []
    at(rt, local(DAY, "11:00"))  # silence over: the missed curtain goes out now
    assert "curtain not opened" in rx.to("v-day")[-1]["title"]


def test_claim_not_resolved_in_time_reminds_claimer_then_staff(db_url: str, rx: Receiver) -> None:
    rt = start(db_url, community(rx))
    at(rt, local(DAY, "09:15"))
    [a] = alerts(rt)
    with rt.sessions.begin() as s:
        assert claim(s, a.id, "v-day", local(DAY, "09:16"))
    at(rt, local(DAY, "10:15"))
    assert (len(rx.to("v-day")), rx.to("s-chen")) == (1, [])
    at(rt, local(DAY, "10:16"))
    assert (len(rx.to("v-day")), rx.to("s-chen")) == (2, [])  # reminder to the claimer
    at(rt, local(DAY, "10:31"))
    assert len(rx.to("s-chen")) == 1
    at(rt, local(DAY, "12:00"))
    assert (len(rx.to("v-day")), len(rx.to("s-chen"))) == (2, 1)


def test_a_burst_of_missed_windows_is_one_system_message_to_staff(
    db_url: str, rx: Receiver
) -> None:
    ma = f"""  - {{id: s-ma, name: Ma, role: staff, notify: ["{rx.url("s-ma")}"]}}\n"""
    text = community(rx, residents=12).replace("escalation:", ma + "escalation:")
    rt = start(db_url, text, residents=12)
    at(rt, local(DAY, "09:15"))
    at(rt, local(DAY, "09:45"))
    assert rx.to("v-day") == []
    [msg] = rx.to("s-chen")
    assert msg["title"].startswith("system problem: 12 routines missed at once at 11-23 09:15")
    # Staff who read Chinese (the default) are told in Chinese, in community time.
    [msg] = rx.to("s-ma")
    assert msg["title"].startswith("系统故障: 11-23 09:15 同时有 12 项作息异常"), msg["title"]
    kinds = sorted(a.kind for a in alerts(rt))
    assert kinds == ["missed_routine"] * 12 + ["system"]
    assert all(
        a.detail.startswith("grouped into system alert") for a in alerts(rt, kind="missed_routine")
    )


def test_staff_set_a_silence_from_the_command_line(
    db_url: str, rx: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from curtainwatch.cli import main

    rt = start(db_url, community(rx))
    until = local(DAY, "11:00").isoformat()
    assert (
        main(
            [
                "--database",
                db_url,
                "silence",
                "--building",
                "3",
                "--from",
                local(DAY, "08:00").isoformat(),
                "--until",
                until,
                "--reason",
                "power cut",
                "--by",
                "s-chen",
            ]
        )
        == 0
    )
    assert "silenced building 3" in capsys.readouterr().out
    at(rt, local(DAY, "09:15"))
    assert rx.to("v-day") == []
    at(rt, local(DAY, "11:00"))
    assert len(rx.to("v-day")) == 1
    assert (
        main(
            [
                "--database",
                db_url,
                "silence",
                "--resident",
                "nobody",
                "--until",
                until,
                "--from",
                local(DAY, "08:00").isoformat(),
            ]
        )
        == 2
    )
    assert "there is no resident 'nobody'" in capsys.readouterr().err


def test_two_instances_climbing_the_same_ladders_send_each_message_once(
    db_url: str, rx: Receiver
) -> None:
    import threading

    first = start(db_url, community(rx, residents=5), residents=5)
    clock = first.clock
    second = Runtime(Settings(database_url=db_url), clock, migrate=False)
    assert isinstance(clock, SimulatedClock)
    for hm in ("09:15", "09:31"):  # volunteers, then staff 15 minutes later
        clock.set(local(DAY, hm))
        first.engine.settle_due()
        barrier = threading.Barrier(2)

        def climb(rt: Runtime, barrier: threading.Barrier) -> None:
            barrier.wait()
            rt.notify()

        threads = [threading.Thread(target=climb, args=(rt, barrier)) for rt in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(rx.to("v-day")) == 5 and len(rx.to("s-chen")) == 5
