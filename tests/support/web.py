"""Test helpers for the web interface: the app over a runtime (see support.world for the
runtime, its community and users), its browsers asking for English, signing in through the
real login form (CSRF and all), posting forms, and reading a page as a person would.

    app = web_app(World().runtime(db_url))   # or the `app` fixture (tests/conftest.py)
    client = signed_in(app, "staff")
    post_form(client, "/alerts/12/note", {"text": "Called her son."}, form_page="/alerts/12")
"""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from curtainwatch.runtime import Runtime
from support.world import PASSWORD

__all__ = [
    "EnglishClient",
    "csrf_token",
    "form_field",
    "post_form",
    "sign_in",
    "signed_in",
    "visible",
    "web_app",
]


class EnglishClient(FlaskClient):
    """A test client whose browser asks for English (the app's default is Chinese), so
    tests can read the pages; a test of languages sets Accept-Language itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


def web_app(rt: Runtime, language: str | None = "en", **config: Any) -> Flask:
    """The app over `rt` (TESTING); its test clients' browsers ask for `language` (None:
    they ask for nothing, so pages come in the app's default, Chinese)."""
    from web.app import create_app

    app = create_app(rt, {"TESTING": True, **config})
    if language == "en":
        app.test_client_class = EnglishClient
    elif language is not None:
        raise ValueError(f"no test client asks for {language!r}")
    return app


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at `path` (Flask-WTF's hidden field)."""
    page = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


def form_field(resp: TestResponse) -> str:
    """The form token of the link page in `resp` (phone and family pages: web.forms)."""
    m = re.search(r'name="form_token" value="([0-9a-f]+)"', resp.get_data(as_text=True))
    assert m, "no form on the page"
    return m.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> TestResponse:
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password}
    )


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    resp = sign_in(client, username)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return client


def post_form(
    client: FlaskClient, path: str, data: dict[str, Any], form_page: str | None = None
) -> TestResponse:
    """POST `data` to `path` with the CSRF token read from `form_page` (default: `path`)."""
    return client.post(path, data={"csrf_token": csrf_token(client, form_page or path), **data})


def visible(resp: TestResponse) -> str:
    """The text a person would read on the page, tags, scripts and styles removed."""
    page = resp.get_data(as_text=True)
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
