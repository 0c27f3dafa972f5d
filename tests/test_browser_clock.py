"""The header clock in a real browser: in the demo (an accelerated clock) it keeps ticking
at the clock's rate without a reload, and it says the time is simulated."""

from __future__ import annotations

from support.browser import browser_page, chromium, live_server
from support.web import web_app
from support.world import COMMUNITY, PASSWORD, at

from curtainwatch.runtime import Runtime
from monitor.admin.users import create_user
from monitor.clock import AcceleratedClock
from monitor.config import Settings


def test_simulated_clock_ticks_in_the_header(db_url: str) -> None:
    # One simulated hour per real second.
    rt = Runtime(Settings(database_url=db_url), AcceleratedClock(at("05:30"), 3600))
    rt.import_community(COMMUNITY)
    with rt.sessions.begin() as s:
        create_user(s, "staff", PASSWORD, "staff", rt.clock.now(), person_id="s-chen")
    with live_server(web_app(rt)) as base, chromium() as browser, browser_page(browser) as page:
        page.goto(f"{base}/login")
        header = page.locator("#clock")
        assert "Simulated time" in header.inner_text()
        first = page.locator("#clock .clock-time").inner_text()
        page.wait_for_function(
            "t => document.querySelector('#clock .clock-time').textContent !== t", arg=first
        )
        later = page.locator("#clock .clock-time").inner_text()
        assert later > first  # same yyyy-MM-dd HH:mm format, later time
