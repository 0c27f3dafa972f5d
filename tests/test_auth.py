"""Signing in (issue 4, point 1): real argon2 passwords, CSRF on the form, cookies HttpOnly
and SameSite, failed attempts rate-limited per address and username, safe redirects, the
language switch, and `curtainwatch user add` making the first admin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support.web import csrf_token, sign_in, signed_in, visible
from support.world import PASSWORD

from curtainwatch.runtime import Runtime
from monitor.admin.users import check_password
from monitor.config import Settings
from monitor.models import User


def test_sign_in_sets_a_protected_session_cookie(client: FlaskClient) -> None:
    resp = sign_in(client, "staff")
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_is_refused_with_a_message(client: FlaskClient) -> None:
    resp = sign_in(client, "staff", "wrong password")
    assert resp.status_code == 401
    assert "Wrong username or password." in visible(resp)
    resp = sign_in(client, "nobody", PASSWORD)
    assert resp.status_code == 401


def test_login_form_without_csrf_token_is_refused(client: FlaskClient) -> None:
    resp = client.post("/login", data={"username": "staff", "password": PASSWORD})
    assert resp.status_code in (400, 401)
    assert resp.status_code != 302


def test_failed_attempts_are_rate_limited_per_username(client: FlaskClient) -> None:
    codes = [sign_in(client, "staff", f"guess {i}").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    # Even the right password waits now; another username from the same desk does not.
    assert sign_in(client, "staff").status_code == 429
    assert sign_in(client, "admin").status_code == 302


def test_next_only_redirects_within_the_site(client: FlaskClient) -> None:
    token = csrf_token(client, "/login")
    data = {"csrf_token": token, "username": "staff", "password": PASSWORD}
    resp = client.post("/login?next=https://evil.example/x", data=data)
    assert resp.status_code == 302
    assert "evil.example" not in resp.headers["Location"]


def test_sign_out_needs_a_post_and_ends_the_session(app: Flask) -> None:
    client = signed_in(app, "staff")
    assert client.get("/logout").status_code == 405
    token = csrf_token(client, "/login")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_language_switch_is_remembered_on_the_user(rt: Runtime, app: Flask) -> None:
    client = signed_in(app, "staff")
    token = csrf_token(client, "/login")
    resp = client.post("/language", data={"csrf_token": token, "lang": "zh_CN", "next": "/"})
    assert resp.status_code == 302
    with rt.sessions() as s:
        assert s.scalar(select(User.language).where(User.username == "staff")) == "zh-CN"


def test_user_add_makes_the_first_admin(db_url: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "curtainwatch.cli", "--database", db_url, "user", "add", "boss"]
    done = subprocess.run(
        [*cmd, "--password-stdin"], input="a long password\n", text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    again = subprocess.run(
        [*cmd, "--password-stdin"], input="a long password\n", text=True, capture_output=True
    )
    assert again.returncode == 2 and "already a user 'boss'" in again.stderr
    short = subprocess.run(
        [*cmd[:-1], "tiny", "--password-stdin"], input="short\n", text=True, capture_output=True
    )
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    rt = Runtime(Settings(database_url=db_url))
    with rt.sessions() as s:
        user = check_password(s, "boss", "a long password")
        assert user is not None and user.role == "admin"
        assert check_password(s, "boss", "wrong") is None
