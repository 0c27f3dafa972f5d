"""The volunteer phone page in a real browser at 360×740 (issue 4): the link from a
notification opens, "I'm going" claims, the page fits the screen with nothing sticking
out, and a screenshot is saved to tests/artifacts/phone.png."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select
from support.browser import browser_page, chromium, live_server, overflow, screenshot
from support.world import advance, feed

from alerts.tokens import make_link_token
from curtainwatch.runtime import Runtime
from monitor.models import Alert


def test_phone_page_fits_a_small_phone_and_claims(rt: Runtime, app: Flask) -> None:
    feed(rt, "zigbee2mqtt/card-301", {"contact": False}, "07:40")
    advance(rt, "07:41")
    with rt.sessions() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "help")).one()
    token = make_link_token(app.config["LINK_KEY"], "v-li", alert.id, rt.clock.now())
    with live_server(app) as base, chromium() as browser, browser_page(browser, 360, 740) as page:
        page.goto(f"{base}/m/{token}")
        assert "Wang Shulan" in page.inner_text("body")
        assert overflow(page) == []
        screenshot(page, "phone")
        page.get_by_role("button", name="I'm going").click()
        page.wait_for_load_state()
        assert "You are going" in page.inner_text("body")
        assert overflow(page) == []
        screenshot(page, "phone-claimed")
    with rt.sessions() as s:
        claimed = s.get(Alert, alert.id)
        assert claimed is not None
        assert (claimed.status, claimed.claimed_by) == ("claimed", "v-li")
