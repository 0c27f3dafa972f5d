"""Resident pages (issue 4, point 4) through the app's test client over a real SQLite
database, readings fed through the real ingestor: the list (scope, search, constant query
count), a resident's page (contact, devices, today's timeline, the 30-day chart), who may
see and change what, and editing routines and away periods with the engine settling
afterwards. A real Chromium checks the page fits a 360-px phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import event, insert, select
from support.web import post_form, signed_in, visible
from support.world import (
    DAY,
    PASSWORD,
    World,
    advance,
    at,
    community,
    feed,
    resident,
)

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.models import (
    Alert,
    AuditEntry,
    AwayPeriod,
    Device,
    Event,
    Resident,
    Routine,
    Settlement,
)
from monitor.pages.history import DayPoint, SeriesStats, day_series, resident_page, series_stats
from web.chart import scale_for

TODAY = date(2026, 11, 23)


def routine_id(rt: Runtime, resident: str, slot: str) -> int:
    with rt.sessions() as s:
        found = s.scalar(
            select(Routine.id).where(Routine.resident_id == resident, Routine.slot == slot)
        )
    assert found is not None
    return found


@contextmanager
def counting(rt: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(rt.db, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(rt.db, "before_cursor_execute", count)


def day_before(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


# -- the list ------------------------------------------------------------------------------


def test_list_shows_residents_in_scope_with_devices_and_open_alerts(
    rt: Runtime, app: Flask
) -> None:
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")  # help: an open alert

    page = signed_in(app, "staff").get("/residents/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = re.findall(r'<tr data-resident="([^"]+)">(.*?)</tr>', html, re.S)
    assert [r for r, _ in rows] == ["r-301", "r-302", "r-501"]
    assert 'href="/residents/r-301"' in html
    text = visible(page)
    assert "Wang Shulan 3 301 4 1 open" in text
    assert "Zhao Guiying 3 302 2 none" in text
    assert "Sun Lihua 5 501 3 none" in text
    assert 'class="badge red">1 open' in html  # a help alert is red

    vol5 = visible(signed_in(app, "vol5").get("/residents/"))
    assert "Sun Lihua" in vol5 and "Wang Shulan" not in vol5 and "Zhao Guiying" not in vol5
    fam = visible(signed_in(app, "fam301").get("/residents/"))
    assert "Wang Shulan" in fam and "Zhao Guiying" not in fam and "Sun Lihua" not in fam


def test_list_search_and_building_filter(app: Flask) -> None:
    client = signed_in(app, "staff")

    def names(query: str) -> list[str]:
        html = client.get("/residents/" + query).get_data(as_text=True)
        return re.findall(r'<tr data-resident="([^"]+)">', html)

    assert names("?q=zhao") == ["r-302"]
    assert names("?q=501") == ["r-501"]
    assert names("?building=3") == ["r-301", "r-302"]
    assert names("?q=Sun&building=3") == []
    assert names("?q=%25") == []  # a % is searched for, not a wildcard
    # A volunteer cannot widen their scope by asking for another building.
    vol3 = signed_in(app, "vol3")
    assert "r-501" not in vol3.get("/residents/?building=5").get_data(as_text=True)


def test_list_query_count_does_not_grow_with_residents(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    client.get("/residents/")  # warm: anything cached per process is cached now
    with counting(rt) as few:
        assert client.get("/residents/").status_code == 200

    now = rt.clock.now()
    with rt.sessions.begin() as s:
        for i in range(40):
            rid = f"r-9{i:02d}"
            s.add(
                Resident(
                    id=rid,
                    name=f"Extra {i}",
                    building="9",
                    unit=f"9{i:02d}",
                    timezone="Asia/Shanghai",
                )
            )
            s.flush()
            s.add_all(
                Device(id=f"{kind}-9{i:02d}", resident_id=rid, kind=kind, created_at=now)
                for kind in ("curtain", "door")
            )
            s.add(
                Alert(
                    resident_id=rid,
                    kind="help",
                    cause="help",
                    severity="critical",
                    raised_at=now,
                    last_raised_at=now,
                )
            )
    with counting(rt) as many:
        page = client.get("/residents/")
    assert page.status_code == 200
    assert visible(page).count("Extra ") == 40
    assert len(many) == len(few), (few, many)
    assert len(few) <= 8


# -- one resident ------------------------------------------------------------------------


def test_resident_page_shows_contact_devices_and_todays_timeline(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:40")
    feed(rt, "zigbee2mqtt/curtain-301", {"battery": 12}, "07:41")
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "07:45")
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "07:50")
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "08:00")
    advance(rt, "10:41")  # settles the 07:00-09:00 window (satisfied) at 09:15

    resp = signed_in(app, "staff").get("/residents/r-301")
    assert resp.status_code == 200
    text = visible(resp)
    html = resp.get_data(as_text=True)
    assert "Building 3, unit 301" in text
    assert "Phone 138 0000 0301" in text and 'href="tel:13800000301"' in html
    assert "Wang Jun (son), 139 0000 1111" in text
    assert "Hard of hearing: knock loudly." in text

    curtain = re.search(r'<tr data-device="curtain-301">(.*?)</tr>', html, re.S)
    assert curtain is not None
    row = " ".join(re.sub(r"<[^>]+>", " ", curtain.group(1)).split())
    assert row == "Curtain online curtain-301 open 12% 07:41 (3h ago)"
    assert 'class="badge red">12%' in curtain.group(1)  # low battery stands out
    door = re.search(r'<tr data-device="door-301">(.*?)</tr>', html, re.S)
    assert door is not None and "07:45" in door.group(1)

    timeline = text[text.index("Today, 2026-11-23") : text.index("Last 30 days")]
    assert timeline.split("Today, 2026-11-23 ", 1)[1].strip() == (
        "07:40 curtain opened curtain-301 "
        "07:45 door opened door-301 "
        "07:50 light on light-301 "
        "08:00 help card flipped card-301 "
        "08:00 Alert raised: help card card-301 "
        "09:15 Curtain opens window settled: done "
        "10:41 Alert raised: low battery curtain-301"
    )
    routines = text[text.index("Routines Routine") : text.index("Change a routine")]
    assert "Curtain opens 07:00–09:00 + 15m grace 11-24 09:15 done" in routines
    assert "Door opens 06:00–22:00 22:00 not yet" in routines
    assert "help card raised 2026-11-23 08:00" in text  # the open alert, at the top


def test_chart_has_one_point_per_day_with_an_opening_and_the_usual_line(
    rt: Runtime, app: Flask
) -> None:
    openings: dict[str, str] = {}
    for n in range(29, 0, -1):
        if n in (20, 13):
            continue  # no events at all those days
        wall = "07:30" if n > 5 else f"08:{10 + (5 - n) * 5:02d}"  # the last 5 days later
        openings[day_before(n)] = wall
        feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, wall, day=day_before(n))
        feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "18:20", day=day_before(n))
        feed(rt, "zigbee2mqtt/light-301", {"state": "OFF"}, "22:00", day=day_before(n))
        feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "21:05", day=day_before(n))
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "10:00", day=day_before(9))
    feed(rt, "zigbee2mqtt/card-301", {"contact": True}, "10:05", day=day_before(9))
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(at("06:30"))  # today: nothing yet

    html = signed_in(app, "staff").get("/residents/r-301").get_data(as_text=True)
    svg = re.search(r"<svg\b.*?</svg>", html, re.S)
    assert svg is not None
    chart = svg.group(0)
    assert 'viewBox="0 0 ' in chart and 'width="100%"' in chart and 'role="img"' in chart
    assert "<title" in chart and "<desc" in chart

    opens = dict(re.findall(r'class="pt open" data-day="([\d-]+)" data-minute="(\d+)"', chart))
    expected = {day: str(int(w[:2]) * 60 + int(w[3:])) for day, w in openings.items()}
    assert opens == expected  # one point per day with an opening, at its local time
    assert len(re.findall(r'class="pt close"', chart)) == 27
    assert len(re.findall(r'class="pt light"', chart)) == 27
    assert re.findall(r'class="alert-mark" data-day="([\d-]+)"', chart) == [day_before(9)]

    usual = re.search(r'<line class="usual" data-minute="(\d+)"[^>]*y1="([\d.]+)"[^>]*>', chart)
    assert usual is not None and usual.group(1) == "450"  # median of the openings: 07:30
    with rt.sessions() as s:
        page = resident_page(s, "r-301", rt.clock.now())
    assert page is not None
    assert float(usual.group(2)) == scale_for(page.series).y(450)
    assert 'stroke-dasharray="6 4"' in usual.group(0)

    summary = "Usually opens the curtain at 07:30; the last 5 days later than usual."
    assert summary in visible_text(html)
    assert f'<figcaption class="chart-summary">{summary}' in html
    assert summary in chart  # in the <desc> too


def visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_series_groups_by_local_day_across_dst(db_url: str) -> None:
    """A New York resident opening at 07:30 every day: 07:30 on both sides of the
    2026-11-01 fall-back, and a 23:30 closing stays on its own evening."""
    ny = ZoneInfo("America/New_York")
    now = datetime(2026, 11, 10, 12, 0, tzinfo=ny)
    ruth = resident(
        "ny-1",
        tag="ny1",
        name="Ruth Miller",
        building="1",
        devices=("curtain",),
        routines=[{"kind": "curtain_open", "start": "07:00", "end": "09:00"}],
    )
    text = community(residents=[ruth], people=[], escalation=None, timezone=ny.key)
    rt = World(text, start=now, users=False).runtime(db_url)
    rows = []
    for n in range(24):
        day = date(2026, 10, 17) + timedelta(days=n)
        for wall, value in (("07:30", "open"), ("23:30", "closed")):
            ts = datetime.fromisoformat(f"{day}T{wall}").replace(tzinfo=ny).astimezone(UTC)
            rows.append(
                {
                    "resident_id": "ny-1",
                    "device_id": "curtain-ny1",
                    "kind": "curtain",
                    "value": value,
                    "ts": ts,
                    "received_at": ts,
                }
            )
    with rt.sessions.begin() as s:
        s.execute(insert(Event), rows)
    with rt.sessions() as s:
        page = resident_page(s, "ny-1", now)
    assert page is not None
    series = page.series
    assert [p.day for p in series] == [date(2026, 10, 12) + timedelta(days=n) for n in range(30)]
    with_data = [p for p in series if p.has_data]
    assert [p.day for p in with_data] == [date(2026, 10, 17) + timedelta(days=n) for n in range(24)]
    assert {(p.first_open, p.last_close) for p in with_data} == {(450, 1410)}
    assert page.stats.usual_open == 450 and page.stats.late_streak == 0


def test_series_stats_skip_away_days_and_wait_for_today() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    first, last = date(2026, 11, 1), date(2026, 11, 10)
    events = []
    for n in range(9):
        day = first + timedelta(days=n)
        wall = "07:30" if n < 5 else "09:00"
        events.append(
            (datetime.fromisoformat(f"{day}T{wall}").replace(tzinfo=zone), "curtain", "open")
        )
    away = [(date(2026, 11, 7), date(2026, 11, 7))]
    points = day_series(events, [], away, zone, first, last)
    assert points[6].away and points[-1] == DayPoint(last)
    stats = series_stats(points)
    # Openings 07:30 x5, 09:00 x4: the median is 07:30; today (no data yet) is not counted,
    # the away day neither breaks nor counts in the run of late days.
    assert stats == SeriesStats(450, None, 3, 0, 0, 8)


# -- who sees what -----------------------------------------------------------------------


def test_scope_volunteers_and_family(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:40")
    assert signed_in(app, "vol5").get("/residents/r-301").status_code == 403
    assert signed_in(app, "vol5").get("/residents/r-501").status_code == 200

    vol3 = signed_in(app, "vol3").get("/residents/r-301")
    assert vol3.status_code == 200
    assert "138 0000 0301" in visible(vol3)  # the volunteer who knocks sees the phone
    assert "Change a routine" not in visible(vol3) and "/routines/" not in vol3.get_data(
        as_text=True
    )

    fam = signed_in(app, "fam301")
    page = fam.get("/residents/r-301")
    assert page.status_code == 200
    text, html = visible(page), page.get_data(as_text=True)
    assert "07:40 curtain opened" in text and "Last 30 days" in text
    assert "Curtain opens 07:00–09:00" in text
    assert "138 0000 0301" not in text and "Hard of hearing" not in text  # staff's details
    assert "only staff can change it" in text
    assert "/routines/" not in html and "/away" not in html and "Add away period" not in text
    assert fam.get("/residents/r-302").status_code == 403
    assert fam.get("/residents/r-nobody").status_code == 403

    rid = routine_id(rt, "r-301", "curtain_open#0")
    data = {"start": "08:00", "end": "10:00", "grace": "15m", "active": "on"}
    for username in ("fam301", "vol3"):
        client = signed_in(app, username)
        resp = post_form(
            client, f"/residents/r-301/routines/{rid}", data, form_page="/residents/r-301"
        )
        assert resp.status_code == 403, username
        resp = post_form(
            client,
            "/residents/r-301/away",
            {"first_day": DAY, "last_day": DAY},
            form_page="/residents/r-301",
        )
        assert resp.status_code == 403, username
    with rt.sessions() as s:
        assert s.scalar(select(Routine.start).where(Routine.id == rid)) == "07:00"
        assert s.scalars(select(AuditEntry)).all() == []


# -- editing -----------------------------------------------------------------------------


def test_changing_a_window_moves_its_next_due_time(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    rid = routine_id(rt, "r-301", "curtain_open#0")
    page = client.get("/residents/r-301")
    assert "Changes here are replaced if the community file is imported again." in visible(page)

    resp = post_form(
        client,
        f"/residents/r-301/routines/{rid}",
        {"start": "08:00", "end": "10:00", "grace": "15m", "active": ["off", "on"]},
        form_page="/residents/r-301",
    )
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/residents/r-301#routines")
    with rt.sessions() as s:
        x = s.get(Routine, rid)
        assert x is not None
        assert (x.start, x.end, x.active) == ("08:00", "10:00", True)
        assert x.next_due_at == at("10:15")
        [entry] = s.scalars(select(AuditEntry)).all()
        assert (entry.actor, entry.action) == ("s-chen", "routine.edit")
        assert "start 07:00 → 08:00; end 09:00 → 10:00" in entry.detail
    text = visible(client.get("/residents/r-301"))
    assert "Routine saved." in text
    assert "Curtain opens 08:00–10:00 + 15m grace 10:15 not yet" in text


def test_an_invalid_time_shows_the_message_and_changes_nothing(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    rid = routine_id(rt, "r-301", "curtain_open#0")
    resp = post_form(
        client,
        f"/residents/r-301/routines/{rid}",
        {"start": "25:00", "end": "10:00", "grace": "15m", "active": ["off", "on"]},
        form_page="/residents/r-301",
    )
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert '"25:00" is not a time; write it as HH:MM, from 00:00 to 23:59.' in visible(resp)
    form = re.search(
        rf'<details class="routine-edit" id="edit-{rid}" open>(.*?)</details>', html, re.S
    )
    assert form is not None  # the form with the problem is open, with what was typed
    assert 'value="25:00" aria-invalid="true"' in form.group(1)
    assert 'value="10:00"' in form.group(1)
    with rt.sessions() as s:
        x = s.get(Routine, rid)
        assert x is not None
        assert (x.start, x.end, x.next_due_at) == ("07:00", "09:00", at("09:15"))
        assert s.scalars(select(AuditEntry)).all() == []


def test_away_period_added_on_the_page_settles_windows_away(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    resp = post_form(
        client,
        "/residents/r-301/away",
        {"first_day": DAY, "last_day": "2026-11-24"},
        form_page="/residents/r-301",
    )
    assert resp.status_code == 302
    page = visible(client.get("/residents/r-301"))
    assert "Away from 2026-11-23 to 2026-11-24 added." in page
    assert "2026-11-23 to 2026-11-24 away now" in page

    advance(rt, "09:20")  # the engine settles today's 07:00-09:00 (+15m) window
    with rt.sessions() as s:
        outcomes = s.execute(
            select(Settlement.kind, Settlement.outcome).where(Settlement.resident_id == "r-301")
        ).all()
        missed = s.scalars(
            select(Alert).where(Alert.resident_id == "r-301", Alert.kind == "missed_routine")
        ).all()
    assert outcomes == [("curtain_open", "away")]
    assert missed == []
    page = visible(client.get("/residents/r-301"))
    assert "Curtain opens window settled: away" in page

    # Invalid dates come back with the message; removing the period works.
    resp = post_form(
        client,
        "/residents/r-301/away",
        {"first_day": "2026-11-30", "last_day": "2026-11-29"},
        form_page="/residents/r-301",
    )
    assert resp.status_code == 400
    assert "The last day is before the first day." in visible(resp)
    with rt.sessions() as s:
        away_id = s.scalar(select(AwayPeriod.id).where(AwayPeriod.resident_id == "r-301"))
    resp = post_form(
        client, f"/residents/r-301/away/{away_id}/delete", {}, form_page="/residents/r-301"
    )
    assert resp.status_code == 302
    with rt.sessions() as s:
        assert s.scalar(select(AwayPeriod.id).where(AwayPeriod.resident_id == "r-301")) is None
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["away.add", "away.remove"]


def test_edits_need_the_csrf_token(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    rid = routine_id(rt, "r-301", "curtain_open#0")
    resp = client.post(
        f"/residents/r-301/routines/{rid}", data={"start": "08:00", "end": "10:00", "active": "on"}
    )
    assert resp.status_code == 400
    resp = client.post("/residents/r-301/away", data={"first_day": DAY, "last_day": DAY})
    assert resp.status_code == 400
    with rt.sessions() as s:
        assert s.scalar(select(Routine.start).where(Routine.id == rid)) == "07:00"
        assert s.scalar(select(AwayPeriod.id).where(AwayPeriod.resident_id == "r-301")) is None


# -- a real phone-sized browser ----------------------------------------------------------


def test_resident_pages_fit_a_360_px_phone(rt: Runtime, app: Flask) -> None:
    from support.browser import browser_page, chromium, live_server, overflow, screenshot

    for n in range(10, 0, -1):
        feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:30", day=day_before(n))
        feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "21:30", day=day_before(n))
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:40")
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:50")
    with live_server(app) as base, chromium() as browser, browser_page(browser, 360, 740) as page:
        page.goto(base + "/login")
        page.fill("input[name=username]", "staff")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(base + "/residents/")
        assert overflow(page) == []
        page.goto(base + "/residents/r-301")
        page.click(f"#edit-{routine_id(rt, 'r-301', 'curtain_open#0')} summary")
        page.fill(f"#edit-{routine_id(rt, 'r-301', 'curtain_open#0')} input[name=start]", "25:00")
        page.click(f"#edit-{routine_id(rt, 'r-301', 'curtain_open#0')} button.primary")
        assert page.locator(".field-error").first.inner_text().startswith('"25:00" is not a time')
        assert overflow(page) == []
        chart = page.locator("svg.history-chart").bounding_box()
        assert chart is not None and chart["width"] <= 360
        screenshot(page, "resident-360")
