"""The today board (issue 4, point 2): tile colours through a day of real readings (the
real ingestor, engine and alert book on a simulated clock), who sees which tiles, the
filters and their counts, the live endpoint's ETag, a constant number of SQL statements
whatever the number of residents, the pure status function on a simulated clock, and the
page in a real browser at 360 px, updating itself and saying so when it cannot."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from support import world
from support.browser import browser_page, chromium, live_server, overflow, screenshot
from support.web import post_form, signed_in, visible, web_app
from support.world import (
    COMMUNITY,
    DOOR,
    SHANGHAI,
    World,
    advance,
    community,
    feed,
    fixture_residents,
    resident,
)
from werkzeug.test import TestResponse

from alerts.lifecycle import claim
from curtainwatch.runtime import Runtime
from monitor.access import Scope
from monitor.models import Alert, AwayPeriod, Device
from monitor.pages.board import Facts, OpenAlert, Window, _local_hhmm, compute_board, tile_status
from monitor.rules.windows import local_date

TILE = re.compile(r'<li class="tile s-(\w+)" id="t-([^"]+)">(.*?)</li>', re.S)


def tiles(resp: TestResponse) -> dict[str, str]:
    """resident id -> tile colour, as the page shows them."""
    assert resp.status_code == 200, resp.status_code
    return {rid: status for status, rid, _ in TILE.findall(resp.get_data(as_text=True))}


def tile_text(resp: TestResponse, resident_id: str) -> str:
    for _, rid, body in TILE.findall(resp.get_data(as_text=True)):
        if rid == resident_id:
            return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
    raise AssertionError(f"no tile for {resident_id}")


def board(client: FlaskClient, query: str = "") -> TestResponse:
    return client.get("/" + query)


# -- colours through a day -----------------------------------------------------------------


def test_tiles_follow_a_morning_of_real_readings(db_url: str) -> None:
    rt = World(start="05:30").runtime(db_url)
    client = signed_in(web_app(rt), "staff")

    # 05:30: no window has opened yet.
    assert tiles(board(client)) == {"r-301": "green", "r-302": "green", "r-501": "green"}
    assert "All well so far" in tile_text(board(client), "r-301")

    # r-302's curtain reports once (closed), so its sensor counts as alive at 09:15.
    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0}, "06:10")
    # 06:30: the door windows (06:00-22:00) of r-301 and r-501 are open; r-302 has none.
    advance(rt, "06:30", jobs=())
    assert tiles(board(client)) == {"r-301": "amber", "r-302": "green", "r-501": "amber"}
    assert "Waiting for the door to be used" in tile_text(board(client), "r-501")
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:40")
    page = board(client)
    assert tiles(page)["r-301"] == "green"
    assert "Door 06:40" in tile_text(page, "r-301")

    # 07:30: the curtain windows (07:00-09:00) are open and no curtain has moved.
    advance(rt, "07:30")
    page = board(client)
    assert tiles(page) == {"r-301": "amber", "r-302": "amber", "r-501": "amber"}
    assert "Waiting for the curtain to open" in tile_text(page, "r-302")
    assert "Waiting: 3" in visible(page)

    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:35")
    page = board(client)
    assert tiles(page)["r-301"] == "green"
    assert "Curtain open 07:35" in tile_text(page, "r-301")

    # The help card is flipped: red, unclaimed, then claimed by the volunteer.
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
    page = board(client)
    assert tiles(page)["r-301"] == "red"
    assert "Help card shows help" in tile_text(page, "r-301")
    assert "Nobody has claimed it yet" in tile_text(page, "r-301")
    with rt.sessions.begin() as s:
        help_id = s.scalars(select(Alert.id).where(Alert.kind == "help")).one()
        assert claim(s, help_id, "v-li", rt.clock.now())
    text = tile_text(board(client), "r-301")
    assert "Claimed by Li Ming" in text and "Help card shows help" in text

    # 09:20: the curtain window of r-302 closed without the curtain opening -> missed.
    advance(rt, "09:20")
    page = board(client)
    assert tiles(page) == {"r-301": "red", "r-302": "red", "r-501": "amber"}
    assert "Curtain did not open in time" in tile_text(page, "r-302")
    assert "1 of 1 checks passed today" in tile_text(page, "r-301")  # the curtain window
    # r-501's curtain never reported: its window settled unknown (no alarm), and the door
    # window is still waiting.
    assert "Waiting for the door to be used" in tile_text(page, "r-501")
    assert "0 of 1 checks passed today" in tile_text(page, "r-302")


@pytest.mark.parametrize("how", ["admin page", "community file"])
def test_a_moved_door_brings_no_door_time_from_its_old_home(db_url: str, how: str) -> None:
    rt = World(start="06:30").runtime(db_url)
    client = signed_in(web_app(rt), "staff")
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:40")
    assert "Door 06:40" in tile_text(board(client), "r-301")

    advance(rt, "07:00", jobs=())
    if how == "admin page":
        resp = post_form(
            client,
            "/admin/devices/move",
            {"device_id": "door-301", "resident_id": "r-501", "back_to": "r-301"},
            "/admin/residents/r-301",
        )
        assert resp.status_code == 303
    else:  # the two doors swap homes
        swapped = COMMUNITY.replace("id: door-301,", "id: door-x,").replace(
            "id: door-501,", "id: door-301,"
        )
        rt.import_community(swapped.replace("id: door-x,", "id: door-501,"))
    # 06:40 happened at r-301's door: r-501 has not used a door today.
    assert "Door" not in tile_text(board(client), "r-501")
    # A reading from before the move, arriving late, neither shows nor sets the state back.
    late = {"kind": "door", "value": "closed", "ts": "2026-11-23T06:35:00+08:00"}
    feed(rt, "curtainwatch/door-301/event", late, "07:05")
    assert "Door" not in tile_text(board(client), "r-501")
    with rt.sessions() as s:
        door = s.get(Device, "door-301")
        assert door is not None and (door.state, door.state_at) == ("open", world.at("06:40"))
    feed(rt, "zigbee2mqtt/door-301", {"contact": True}, "07:10")
    assert "Door 07:10" in tile_text(board(client), "r-501")


def test_window_past_due_stays_amber_until_the_engine_settles_it(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0}, "06:10")
    client = signed_in(app, "staff")
    advance(rt, "09:16", jobs=())  # due at 09:15; the settle tick has not run yet
    page = board(client)
    assert tiles(page)["r-302"] == "amber"
    assert "Time is up: being checked now" in tile_text(page, "r-302")
    advance(rt, "09:17")
    assert tiles(board(client))["r-302"] == "red"


def test_offline_device_makes_the_tile_grey_until_it_is_back(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    feed(rt, "zigbee2mqtt/door-501/availability", {"state": "offline"}, "07:30")
    page = board(client)
    assert tiles(page)["r-501"] == "grey"
    assert "Sensor problem" in tile_text(page, "r-501")
    assert tiles(page)["r-301"] == "amber"
    feed(rt, "zigbee2mqtt/door-501/availability", {"state": "online"}, "07:45")
    assert tiles(board(client))["r-501"] == "amber"


def test_a_device_alert_alone_is_not_red(rt: Runtime, app: Flask) -> None:
    """A battery device silent past its 25 h makes a device_offline alert (staff's), and a
    grey tile, never a red one."""
    feed(rt, "zigbee2mqtt/card-302", {"battery": 80, "contact": True}, "06:05")
    client = signed_in(app, "staff")
    advance(rt, "07:10", day="2026-11-24")
    with rt.sessions() as s:
        kinds = set(s.scalars(select(Alert.kind).where(Alert.resident_id == "r-302")))
    assert "device_offline" in kinds
    page = board(client)
    assert tiles(page)["r-302"] == "grey"
    assert "Sensor problem" in tile_text(page, "r-302")


def test_away_residents_are_grey(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    with rt.sessions.begin() as s:
        s.add(
            AwayPeriod(
                resident_id="r-302", first_day=date(2026, 11, 23), last_day=date(2026, 11, 23)
            )
        )
    advance(rt, "07:30")
    page = board(client)
    assert tiles(page)["r-302"] == "grey"
    assert "Away today" in tile_text(page, "r-302")
    assert tiles(page)["r-501"] == "amber"
    # r-501 is away 2026-12-20..27 (community file): grey on the 21st; r-302 is back.
    advance(rt, "07:30", day="2026-12-21")
    page = board(client)
    assert tiles(page)["r-501"] == "grey"
    assert "Away today" in tile_text(page, "r-501")
    assert "Away today" not in tile_text(page, "r-302")


# -- who sees what, filters, counts ----------------------------------------------------------


def test_volunteers_and_family_see_only_their_residents(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
    vol5 = signed_in(app, "vol5")
    assert set(tiles(board(vol5))) == {"r-501"}
    assert set(tiles(vol5.get("/board/tiles"))) == {"r-501"}
    page = visible(board(vol5))
    assert "Wang Shulan" not in page and "Building 3" not in page
    # Asking for another building shows nothing of it.
    assert tiles(vol5.get("/board/tiles?building=3")) == {}
    assert "No residents match this filter." in visible(vol5.get("/board/tiles?building=3"))

    vol3 = signed_in(app, "vol3")
    assert set(tiles(board(vol3))) == {"r-301", "r-302"}
    fam = signed_in(app, "fam301")
    assert tiles(board(fam)) == {"r-301": "red"}
    assert set(tiles(fam.get("/board/tiles?status=red"))) == {"r-301"}
    assert "Sun Lihua" not in visible(board(fam))


def test_filters_by_building_and_status_with_counts(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
    client = signed_in(app, "staff")
    page = board(client)
    text = visible(page)
    assert "All: 3" in text and "Alert: 1" in text and "Waiting: 2" in text
    assert "Building 3: 2 residents, 1 with an alert" in text
    assert "Building 5: 1 resident" in text
    assert set(tiles(board(client, "?building=3"))) == {"r-301", "r-302"}
    assert set(tiles(board(client, "?status=red"))) == {"r-301"}
    assert set(tiles(board(client, "?building=5&status=red"))) == set()
    only5 = board(client, "?building=5&status=amber")
    assert set(tiles(only5)) == {"r-501"}
    # The status counts follow the chosen building.
    assert "All: 1" in visible(only5) and "Alert: 0" in visible(only5)
    # Same filters on the live endpoint.
    assert set(tiles(client.get("/board/tiles?building=3&status=amber"))) == {"r-302"}
    # Nonsense filters are ignored, not errors.
    assert set(tiles(board(client, "?status=purple"))) == {"r-301", "r-302", "r-501"}


def test_page_has_legend_labels_and_links_to_resident_pages(app: Flask) -> None:
    client = signed_in(app, "staff")
    page = board(client)
    body = page.get_data(as_text=True)
    text = visible(page)
    for explained in (  # the legend: every colour named, and what it means
        "Alert : help card, a missed routine or long inactivity; someone must look.",
        "Waiting : a routine's window is open and its sign has not come yet.",
        "Uncertain : away today, or a sensor is offline, so today cannot be judged.",
        "All well : every routine so far has happened, or none has started yet.",
    ):
        assert explained in text
    assert re.search(r'id="t-r-301"><a href="[^"]*/residents/r-301"', body)
    assert 'src="/static/board.js' in body and "board.css" in body
    assert re.search(r"Updated \d\d:\d\d:\d\d", text)


def test_signed_out_board_redirects_and_live_endpoint_says_401(client: FlaskClient) -> None:
    assert client.get("/").status_code == 302
    resp = client.get("/board/tiles")
    assert resp.status_code == 401 and "Location" not in resp.headers


# -- the live endpoint ---------------------------------------------------------------------


def test_live_endpoint_answers_304_until_the_board_changes(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    page = board(client).get_data(as_text=True)
    m = re.search(r'data-etag="([^"]+)"', page)
    assert m
    page_etag = html.unescape(m.group(1))

    first = client.get("/board/tiles")
    etag = first.headers["ETag"]
    assert etag == page_etag  # the page and the endpoint agree: the first poll is a 304
    assert first.headers["X-Board-Time"] == "06:00:00"
    same = client.get("/board/tiles", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.get_data() == b""
    assert same.headers["ETag"] == etag

    advance(rt, "06:20", jobs=())  # time passes, nothing on the board changes
    same = client.get("/board/tiles", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.headers["X-Board-Time"] == "06:20:00"

    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:40")
    changed = client.get("/board/tiles", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert tiles(changed)["r-301"] == "green"
    # A different filter is a different answer.
    other = client.get("/board/tiles?status=green", headers={"If-None-Match": etag})
    assert other.status_code == 200


# -- a constant number of statements -------------------------------------------------------


def community_of(n: int) -> str:
    """The shared fixture community (3 residents, every user's person) plus n - 3 more in
    (n - 3) // 10 buildings, each with a curtain, a door and a help card; one in seven
    away."""
    homes = [
        resident(
            f"r-{i:04d}",
            tag=str(i),
            name=f"Resident {i}",
            building=f"b{i % max(1, n // 10)}",
            unit=str(i),
            devices=("curtain", "door", "help"),
            routines=[{"kind": "curtain_open", "start": "07:00", "end": "09:00"}, DOOR],
            away=[{"from": "2026-11-20", "to": "2026-11-30"}] if i % 7 == 3 else None,
        )
        for i in range(n - 3)
    ]
    return community(residents=[*homes, *fixture_residents()])


def statements(rt: Runtime, client: FlaskClient, path: str) -> int:
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(rt.db, "before_cursor_execute", counted)
    try:
        resp = client.get(path)
        assert resp.status_code == 200
    finally:
        event.remove(rt.db, "before_cursor_execute", counted)
    return count


def test_the_board_issues_the_same_statements_for_10_or_200_residents(db_url: str) -> None:
    rt = World(community_of(10)).runtime(db_url)
    client = signed_in(web_app(rt), "staff")

    def morning(n: int) -> None:
        """Curtains, doors, help cards and a dead sensor, for a share of everyone."""
        for i in range(n - 3):
            if i % 2:
                feed(rt, f"zigbee2mqtt/curtain-{i}", {"position": 100}, "07:20")
            if i % 3 == 0:
                feed(rt, f"zigbee2mqtt/door-{i}", {"contact": False}, "07:25")
            if i % 5 == 0:
                feed(rt, f"zigbee2mqtt/card-{i}", {"contact": False}, "07:30")
            if i % 9 == 0:
                feed(rt, f"zigbee2mqtt/door-{i}/availability", {"state": "offline"}, "07:31")
        advance(rt, "09:30")

    morning(10)
    few = {path: statements(rt, client, path) for path in ("/", "/board/tiles")}
    assert set(tiles(board(client)).values()) >= {"red", "amber", "grey"}

    rt.import_community(community_of(200))
    morning(200)
    many = {path: statements(rt, client, path) for path in ("/", "/board/tiles")}
    shown = tiles(board(client))
    assert len(shown) == 200
    assert few == many, (few, many)
    assert set(shown.values()) == {"red", "amber", "grey", "green"}


# -- the pure status function --------------------------------------------------------------

T0 = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai on 2026-11-23


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


CURTAIN = Window("curtain_open", at(0), at(135))  # 07:00-09:00 + 15 min grace


def test_status_of_a_waiting_window_over_simulated_time() -> None:
    facts = Facts(waiting=(CURTAIN,))
    assert tile_status(facts, at(-1)).status == "green"  # 06:59, not open yet
    assert tile_status(facts, at(0)) == tile_status(facts, at(60))
    assert (tile_status(facts, at(0)).status, tile_status(facts, at(0)).reason) == (
        "amber",
        "waiting",
    )
    assert tile_status(facts, at(0)).detail == "curtain_open"
    overdue = tile_status(facts, at(135))  # due; the engine has not settled it yet
    assert (overdue.status, overdue.reason) == ("amber", "overdue")
    assert tile_status(Facts(), at(60)).status == "green"


def test_status_precedence() -> None:
    help_ = OpenAlert("help")
    missed = OpenAlert("missed_routine", routine_kind="curtain_open")
    claimed_help = OpenAlert("help", claimed=True, claimed_by="Li Ming")
    offline = OpenAlert("device_offline")
    # Red beats everything; help beats a missed routine; unclaimed beats claimed.
    everything = Facts((missed, help_), away=True, offline_devices=("door",), waiting=(CURTAIN,))
    verdict = tile_status(everything, at(60))
    assert (verdict.status, verdict.detail, verdict.alert) == ("red", "help", help_)
    assert tile_status(Facts((claimed_help, help_)), at(60)).alert == help_
    assert tile_status(Facts((missed,)), at(60)).detail == "missed_routine"
    # A device alert alone is not red; with the device offline it is grey.
    assert tile_status(Facts((offline,)), at(60)).status == "green"
    sensor = tile_status(Facts((offline,), offline_devices=("door",)), at(60))
    assert (sensor.status, sensor.reason) == ("grey", "sensor")
    # Away and sensor problems beat a waiting window: today cannot be judged.
    assert tile_status(Facts(away=True, waiting=(CURTAIN,)), at(60)).reason == "away"
    assert tile_status(Facts(offline_devices=("curtain",), waiting=(CURTAIN,)), at(60)).status == (
        "grey"
    )
    # Of two waiting windows, the one due first is shown.
    door = Window("door", at(-60), at(900))
    assert tile_status(Facts(waiting=(door, CURTAIN)), at(60)).detail == "curtain_open"
    assert tile_status(Facts(waiting=(door, CURTAIN)), at(-30)).detail == "door"


def test_compute_board_orders_buildings_and_units_naturally(db_url: str) -> None:
    homes = [
        resident(f"r-{b}-{u}", name=f"R {b} {u}", building=b, unit=u)
        for b, u in (("10", "2"), ("2", "10"), ("2", "9"), ("2", "9A"), ("10", "1"))
    ]
    rt = World(community(residents=[*homes, *fixture_residents()])).runtime(db_url)
    now = rt.clock.now()
    with rt.sessions() as s:
        result = compute_board(s, Scope("staff", "t"), now, SHANGHAI)
    assert [t.resident_id for t in result.tiles] == [
        "r-2-9",
        "r-2-9A",
        "r-2-10",
        "r-301",
        "r-302",
        "r-501",
        "r-10-1",
        "r-10-2",
    ]
    assert [g.building for g in result.groups()] == ["2", "3", "5", "10"]
    assert [g.building for g in result.groups(status="amber")] == ["3", "5"]  # door windows
    assert result.day == local_date(now, SHANGHAI)
    assert result.status_counts() == {"red": 0, "amber": 2, "grey": 0, "green": 6}
    assert result.status_counts("2") == {"red": 0, "amber": 0, "grey": 0, "green": 3}


# -- in a real browser ---------------------------------------------------------------------


def test_board_in_a_browser_fits_360px_updates_live_and_warns_when_stale(
    rt: Runtime, app: Flask
) -> None:
    with chromium() as browser, browser_page(browser, 360, 740) as page:
        with live_server(app) as base:
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "staff")
            page.fill("input[name=password]", "correct horse battery")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("#t-r-301")
            assert overflow(page) == []
            assert page.get_attribute("#t-r-301", "class") == "tile s-amber"
            page.evaluate("window.notReloaded = true")
            # Updates are promised within 5 s: the page asks every 3 s.
            assert int(page.get_attribute("#board-live", "data-poll-ms") or 0) <= 3000

            feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
            # The page polls every 3 s; the timeout only guards a stuck test on a busy box.
            page.wait_for_selector("#t-r-301.s-red", timeout=30_000)
            assert page.evaluate("window.notReloaded") is True  # swapped in, not reloaded
            assert "Help card shows help" in page.inner_text("#t-r-301")
            assert "07:40:00" in page.inner_text("#board-updated")
            assert overflow(page) == []
            screenshot(page, "board-360")

            # The building filter is kept by the live updates.
            page.goto(f"{base}/?building=5")
            page.wait_for_selector("#t-r-501")
            feed(rt, "zigbee2mqtt/door-501/availability", {"state": "offline"}, "07:50")
            page.wait_for_selector("#t-r-501.s-grey", timeout=30_000)
            assert page.locator("#t-r-301").count() == 0
        # The server is gone: the board says so and greys itself out.
        # A poll in flight when the server went away fails at its own 9-s abort at worst.
        page.wait_for_selector("#board-notice:not([hidden])", timeout=30_000)
        assert "Live updates have stopped" in page.inner_text("#board-notice")
        assert "07:50:00" in page.inner_text("#board-notice")
        assert "stale" in (page.get_attribute("#board-live", "class") or "")
        assert overflow(page) == []


def test_tile_times_are_local_in_any_zone_and_on_a_dst_day() -> None:
    def hhmm(zone: str, day_start: datetime, day_end: datetime, *utc: datetime) -> list[str]:
        fmt = _local_hhmm(ZoneInfo(zone), day_start, day_end)
        return [fmt(ts.replace(tzinfo=None)) for ts in utc]

    def at(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)

    # A west-of-UTC zone: the UTC minute is behind midnight's.
    assert hhmm(
        "America/New_York",
        at(2026, 11, 23, 5),
        at(2026, 11, 23, 20),
        at(2026, 11, 23, 12, 31),
        at(2026, 11, 24, 3, 5),
    ) == ["07:31", "22:05"]
    # A quarter-hour offset (+05:45).
    assert hhmm(
        "Asia/Kathmandu", at(2026, 11, 22, 18, 15), at(2026, 11, 23, 10), at(2026, 11, 23, 1, 50)
    ) == ["07:35"]
    # Amsterdam springs forward at 02:00 local on 2026-03-29: each time by its own offset.
    assert hhmm(
        "Europe/Amsterdam",
        at(2026, 3, 28, 23),
        at(2026, 3, 29, 12),
        at(2026, 3, 29, 0, 30),
        at(2026, 3, 29, 6, 30),
    ) == ["01:30", "08:30"]
