"""Issue 4's browser walk-through, in Debian's Chromium against a real Mosquitto: staff sign
in and see the board; a help card published to the broker turns the resident's tile red
without a reload; staff claim and resolve the alert and find it in the history. Screenshots
of the board, the resident page with its chart and the alerts queue at 360×740 go to
tests/artifacts/, each checked for content sticking out past the screen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from support.browser import browser_page, chromium, live_server, overflow, screenshot
from support.mqtt import MosquittoBroker, publish_many
from support.web import web_app
from support.world import PASSWORD, World, at, on_broker

from curtainwatch.runtime import Runtime
from monitor.models import Alert

pytestmark = pytest.mark.broker


@pytest.fixture
def live(db_url: str, broker: MosquittoBroker, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    rt = World(
        start="07:30",  # the curtain windows (07:00-09:00) are open: tiles wait
        settings=on_broker(broker, f"cw-{request.node.name}"),
    ).runtime(db_url)
    rt.start(ingest=True, schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10)
    yield rt
    rt.stop()


def sign_in(page: object, base: str, username: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def test_help_card_turns_the_tile_red_then_staff_resolve_it(
    live: Runtime, broker: MosquittoBroker
) -> None:
    app = web_app(live)
    with live_server(app) as base, chromium() as browser, browser_page(browser) as page:
        sign_in(page, base, "staff")
        page.wait_for_selector("#t-r-301")
        assert "s-red" not in (page.get_attribute("#t-r-301", "class") or "")
        page.evaluate("window.__sameDocument = true")

        publish_many(broker.host, broker.port, [("zigbee2mqtt/card-301", '{"contact": false}')])
        page.wait_for_selector("#t-r-301.s-red", timeout=15_000)  # the board polls every 3 s
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
        assert "Help card" in page.inner_text("#t-r-301")
        screenshot(page, "board-desktop")

        with live.sessions() as s:
            alert = s.scalars(select(Alert).where(Alert.kind == "help")).one()
        page.goto(f"{base}/alerts/")
        card = page.locator(f"#alert-{alert.id}")
        card.get_by_role("button", name="I'm going").click()
        card = page.locator(f"#alert-{alert.id}")
        assert "Chen Fang" in card.inner_text()
        card.locator("summary", has_text="Resolve").click()
        card.locator("select[name=outcome]").select_option("needed_help")
        card.locator("textarea[name=note]").fill("Fell in the kitchen, helped her up.")
        card.get_by_role("button", name="Resolve").click()
        page.wait_for_load_state()
        assert page.locator(f"#alert-{alert.id}").count() == 0  # off the open queue

        page.goto(f"{base}/alerts/history")
        history = page.inner_text("main")
        assert "Wang Shulan" in history and "Fell in the kitchen" in history

        page.goto(f"{base}/")
        page.wait_for_selector("#t-r-301:not(.s-red)")

    with live.sessions() as s:
        done = s.get(Alert, alert.id)
        assert done is not None
        assert (done.status, done.outcome, done.resolved_by) == (
            "resolved",
            "needed_help",
            "s-chen",
        )


def history(days: int = 29) -> list[tuple[str, str]]:
    """A month of curtain openings for r-301, over curtainwatch's own event topic (which
    carries the event time): 07:30 give or take, later every day of the last week."""
    out = []
    for back in range(days, 0, -1):
        minute = 30 + (back * 7) % 11 - 5 + (12 * (8 - back) if back <= 7 else 0)
        ts = at("07:00") - timedelta(days=back) + timedelta(minutes=minute)
        for value, when in (("open", ts), ("closed", ts + timedelta(hours=12))):
            payload = {"kind": "curtain", "value": value, "ts": when.isoformat()}
            out.append(("curtainwatch/curtain-301/event", json.dumps(payload)))
    return out


def test_staff_pages_fit_a_small_phone(live: Runtime, broker: MosquittoBroker) -> None:
    publish_many(
        broker.host,
        broker.port,
        [
            *history(),
            ("zigbee2mqtt/curtain-301", '{"position": 0}'),
            ("zigbee2mqtt/curtain-301", '{"position": 100}'),
            ("zigbee2mqtt/card-302", '{"contact": false}'),
        ],
    )
    app = web_app(live)
    with live_server(app) as base, chromium() as browser, browser_page(browser, 360, 740) as page:
        sign_in(page, base, "staff")
        page.wait_for_selector("#t-r-302.s-red", timeout=15_000)
        for name, path, marker in [
            ("board-phone", "/", "#t-r-301"),
            ("resident-phone", "/residents/r-301", "svg"),
            ("alerts-phone", "/alerts/", "article.alert-item"),
        ]:
            page.goto(base + path)
            page.wait_for_selector(marker)
            screenshot(page, name)
            assert overflow(page) == [], f"{path} sticks out at 360 px"
