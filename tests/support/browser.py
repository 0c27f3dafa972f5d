"""Real-browser helpers: Debian's Chromium driven by Playwright (never a downloaded browser),
the app served by waitress on a free loopback port, screenshots under tests/artifacts/, and
the layout check that a page fits a phone's width.

    with live_server(app) as base, browser_page(width=360, height=740) as page:
        page.goto(base + "/login")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

from support.mqtt import free_port
from support.requirements import CHROMIUM_BROWSER  # /usr/bin/chromium, looked up there

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# As root in a container, and on a machine with no route out: no sandbox, no GPU, and none
# of Chromium's own background connections (which would fail, slowly, at every start).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """`app` under waitress (as `curtainwatch serve` runs it) on a free port; yields the
    base URL."""
    from waitress.server import create_server

    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True, name="test-web")
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium (skipped without it outside CI, a failure under CI)."""
    executable = CHROMIUM_BROWSER.require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(browser: Any, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A fresh context (its own cookies) and page at this viewport size."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG as tests/artifacts/<name>.png (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def overflow(page: Any) -> list[str]:
    """Elements that stick out past the right edge of the viewport (empty: the page fits).
    Each as 'tag.class "text" right=N', so a failure says what to fix."""
    found: list[str] = page.evaluate(
        """() => {
            const limit = window.innerWidth;
            const out = [];
            if (document.documentElement.scrollWidth > limit) {
                out.push(`document scrollWidth=${document.documentElement.scrollWidth} > ${limit}`);
            }
            for (const el of document.body.querySelectorAll('*')) {
                const r = el.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) continue;
                // Content inside a horizontal scroller may be wider: that is the point of it.
                let scroller = false;
                for (let p = el.parentElement; p; p = p.parentElement) {
                    const s = getComputedStyle(p).overflowX;
                    if (s === 'auto' || s === 'scroll' || s === 'hidden') {
                        scroller = true;
                        break;
                    }
                }
                if (!scroller && r.right > limit + 1) {
                    const cls = el.className && typeof el.className === 'string'
                        ? '.' + el.className.split(' ').join('.') : '';
                    const text = (el.innerText || '').slice(0, 30);
                    const tag = el.tagName.toLowerCase();
                    out.push(`${tag}${cls} "${text}" right=${Math.round(r.right)}`);
                }
            }
            return out.slice(0, 20);
        }"""
    )
    return found
