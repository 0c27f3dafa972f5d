"""The escalation ladder's judgement: duty rotas, quiet hours, silences, reminders after a
claim, and a burst of missed windows told once to staff. A local HTTP receiver stands in
for the phone push services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from support.receiver import Receiver
from support.watch import alerts
from support.world import (
    CURTAIN_OPEN,
    DAY,
    LADDER,
    World,
    advance,
    at,
    community,
    feed,
    person,
    resident,
)

from alerts.lifecycle import claim
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Silence


def ladder(
    rx: Receiver,
    residents: int = 1,
    day: str = DAY,
    seen: Sequence[str] = ("curtain", "card"),
    staff: Sequence[dict[str, Any]] = (),
    **v_day: Any,
) -> World:
    """Residents r-0, r-1, ... of building 3 with a curtain and a help card (the `seen` ones
    report at 06:00 on `day`: the curtain shut, the card at rest) and the morning curtain
    window; a day volunteer (weekdays 08:00-20:00, with `v_day` fields), a night volunteer
    (20:00-08:00), staff and then `staff`; volunteers first, staff 15 minutes later."""
    homes = [
        resident(
            f"r-{i}",
            name=f"Resident {i}",
            building="3",
            unit=str(300 + i),
            devices=("curtain", "help"),
            routines=[CURTAIN_OPEN],
        )
        for i in range(residents)
    ]
    people = [
        person(
            "v-day",
            name="Day",
            role="volunteer",
            buildings=["3"],
            language="en",
            rota=[{"days": "mon-fri", "from": "08:00", "to": "20:00"}],
            **v_day,
        ),
        person(
            "v-night",
            name="Night",
            role="volunteer",
            buildings=["3"],
            language="en",
            rota=[{"days": "mon-sun", "from": "20:00", "to": "08:00"}],
        ),
        person("s-chen", name="Chen"),
        *staff,
    ]
    payloads = {"curtain": {"position": 0}, "card": {"contact": True}}
    return World(
        community(residents=homes, people=people, escalation=LADDER[:2], notify=rx.url),
        day=day,
        users=False,
        readings=[(f"zigbee2mqtt/{d}-{i}", payloads[d]) for i in range(residents) for d in seen],
    )


@pytest.fixture
def world(rx: Receiver) -> World:
    return ladder(rx)


def test_only_the_volunteer_on_duty_hears(rt: Runtime, rx: Receiver) -> None:
    advance(rt, "09:15")
    assert (len(rx.to("v-day")), rx.to("v-night")) == (1, [])


def test_nobody_on_duty_means_staff_hear_at_once(db_url: str, rx: Receiver) -> None:
    # Saturday: v-day is off, and v-night's spell has ended at 08:00.
    rt = ladder(rx, day="2026-11-28", seen=("curtain",)).runtime(db_url)
    advance(rt, "09:15", "2026-11-28")
    assert rx.to("v-day") == rx.to("v-night") == []
    assert len(rx.to("s-chen")) == 1


def test_quiet_hours_hold_a_missed_routine_but_not_help(db_url: str, rx: Receiver) -> None:
    rt = ladder(rx, quiet_hours={"from": "09:00", "to": "10:00"}).runtime(db_url)
    advance(rt, "09:15")
    assert rx.to("v-day") == []  # held: v-day is quiet until 10:00
    feed(rt, "zigbee2mqtt/card-0", {"contact": False}, "09:20")
    advance(rt, "09:20")
    [help_msg] = rx.to("v-day")
    assert "asked for help" in help_msg["title"]
    advance(rt, "10:00")
    assert [m["title"].split(": ")[1] for m in rx.to("v-day")] == [
        "asked for help (help card)",
        "curtain not opened",
    ]


def test_silence_holds_the_ladder_until_it_ends_but_never_help(rt: Runtime, rx: Receiver) -> None:
    with rt.sessions.begin() as s:
        s.add(
            Silence(
                building="3",
                starts_at=at("08:00"),
                ends_at=at("11:00"),
                reason="planned power cut",
                created_by="s-chen",
                created_at=at("07:00"),
            )
        )
    advance(rt, "09:15")
    feed(rt, "zigbee2mqtt/card-0", {"contact": False}, "09:30")
    advance(rt, "09:30")
    assert [m["title"].split(": ")[1] for m in rx.to("v-day")] == ["asked for help (help card)"]
    assert rx.to("s-chen") == []
    advance(rt, "11:00")  # silence over: the missed curtain goes out now
    assert "curtain not opened" in rx.to("v-day")[-1]["title"]


def test_claim_not_resolved_in_time_reminds_claimer_then_staff(rt: Runtime, rx: Receiver) -> None:
    advance(rt, "09:15")
    [a] = alerts(rt)
    with rt.sessions.begin() as s:
        assert claim(s, a.id, "v-day", at("09:16"))
    advance(rt, "10:15")
    assert (len(rx.to("v-day")), rx.to("s-chen")) == (1, [])
    advance(rt, "10:16")
    assert (len(rx.to("v-day")), rx.to("s-chen")) == (2, [])  # reminder to the claimer
    advance(rt, "10:31")
    assert len(rx.to("s-chen")) == 1
    advance(rt, "12:00")
    assert (len(rx.to("v-day")), len(rx.to("s-chen"))) == (2, 1)


def test_a_burst_of_missed_windows_is_one_system_message_to_staff(
    db_url: str, rx: Receiver
) -> None:
    ma = person("s-ma", name="Ma", role="staff")
    rt = ladder(rx, residents=12, staff=[ma]).runtime(db_url)
    advance(rt, "09:15")
    advance(rt, "09:45")
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
    db_url: str, rt: Runtime, rx: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from curtainwatch.cli import main

    until = at("11:00").isoformat()
    assert (
        main(
            [
                "--database",
                db_url,
                "silence",
                "--building",
                "3",
                "--from",
                at("08:00").isoformat(),
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
    advance(rt, "09:15")
    assert rx.to("v-day") == []
    advance(rt, "11:00")
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
                at("08:00").isoformat(),
            ]
        )
        == 2
    )
    assert "there is no resident 'nobody'" in capsys.readouterr().err


def test_two_instances_climbing_the_same_ladders_send_each_message_once(
    db_url: str, rx: Receiver
) -> None:
    import threading

    first = ladder(rx, residents=5).runtime(db_url)
    clock = first.clock
    second = Runtime(Settings(database_url=db_url), clock, migrate=False)
    assert isinstance(clock, SimulatedClock)
    for hm in ("09:15", "09:31"):  # volunteers, then staff 15 minutes later
        clock.set(at(hm))
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
