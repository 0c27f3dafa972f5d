"""The Flask app factory (in the style of Flask's tutorial): one app per running instance
(monitor.instance), its sessions and clock available to every blueprint through
`web.helpers.get_runtime()`. Each
part of the web interface is a blueprint registered here; the extensions (login, CSRF,
translations, rate limits) live in `web.extensions`. Holds no business rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, request, session
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from alerts.tokens import LINK_MAX_AGE
from monitor.appsettings import secret_key
from monitor.clock import SystemClock
from monitor.instance import Instance
from monitor.messages import catalogue_locale
from web.extensions import babel, csrf, limiter, login_manager
from web.helpers import EXTENSION, LANGUAGES, community_zone, get_runtime, local_time, said

# (endpoint, label, who sees it): shown once the blueprint that owns the endpoint exists.
NAV = (
    ("board.index", _l("Today"), "any"),
    ("alerts.queue", _l("Alerts"), "any"),
    ("residents.index", _l("Residents"), "any"),
    ("devices.index", _l("Devices"), "staff"),
    ("admin.index", _l("Admin"), "staff"),
)


def create_app(runtime: Instance, config: Mapping[str, Any] | None = None) -> Flask:
    """A web app over `runtime` (its database sessions, clock and settings).

    `config` overrides Flask settings and these: ``LINK_KEY`` (signs and checks one-tap
    links; default: the shared key, as the notifier uses) and ``LINK_MAX_AGE`` (a timedelta,
    default 24 h)."""
    app = Flask(__name__)
    https = runtime.settings.base_url.startswith("https://")
    app.config.from_mapping(
        LINK_MAX_AGE=LINK_MAX_AGE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        BABEL_TRANSLATION_DIRECTORIES="translations",
        BABEL_DEFAULT_LOCALE="zh_CN",
    )
    if config:
        app.config.from_mapping(config)
    if not app.config.get("LINK_KEY"):
        app.config["LINK_KEY"] = secret_key(runtime.sessions, runtime.settings.secret_key)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = app.config["LINK_KEY"]
    if not isinstance(app.config["LINK_MAX_AGE"], timedelta):
        raise TypeError("LINK_MAX_AGE must be a datetime.timedelta")
    app.extensions[EXTENSION] = runtime

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.session_protection = "strong"
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_locale, timezone_selector=_timezone)
    limiter.init_app(app)

    from web import (
        admin,
        alert_views,
        api,
        auth,
        board,
        devices,
        family,
        imports,
        ops,
        phone,
        residents,
    )

    # Link pages carry their own HMAC form guard (web.forms); the API uses bearer tokens.
    for bp in (phone.bp, family.bp, api.bp):
        csrf.exempt(bp)
    for bp in (
        phone.bp,
        family.bp,
        auth.bp,
        board.bp,
        alert_views.bp,
        residents.bp,
        devices.bp,
        admin.bp,
        imports.bp,
        api.bp,
        ops.bp,
    ):
        app.register_blueprint(bp)

    app.jinja_env.filters["local"] = local_time
    app.jinja_env.filters["said"] = said
    app.context_processor(_page_context)
    return app


def _locale() -> str:
    if current_user and current_user.is_authenticated and current_user.language:
        return catalogue_locale(current_user.language)
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], "zh-CN")
    return "en" if best == "en" else "zh_CN"


def _timezone() -> str:
    return str(community_zone())


def _page_context() -> dict[str, Any]:
    runtime = get_runtime()
    role = current_user.role if current_user and current_user.is_authenticated else None
    nav = [
        (endpoint, label)
        for endpoint, label, who in NAV
        if role
        and endpoint in current_app.view_functions
        and (who == "any" or role in ("admin", "staff"))
    ]
    simulated = not isinstance(runtime.clock, SystemClock)
    # How fast the header clock should tick in the browser: 1 for real time, the demo's
    # factor for an accelerated clock, 0 for a clock that only moves when told (tests).
    rate = 1.0 if not simulated else float(getattr(runtime.clock, "factor", 0.0))
    return {
        "clock_rate": rate,
        "clock_zone": str(community_zone()),
        "nav": nav,
        "languages": LANGUAGES,
        "current_locale": str(get_locale()),
        "now": runtime.clock.now(),
        "simulated_clock": simulated,
    }
