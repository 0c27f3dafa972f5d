"""The Flask app factory (in the style of Flask's tutorial): one app per Runtime, with the
runtime's sessions and clock available to every blueprint through `get_runtime()`. Each
part of the web interface is a blueprint registered here (today: the volunteer phone page;
the staff dashboard and the JSON API come later). Holds no business rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, current_app

from alerts.tokens import LINK_MAX_AGE
from monitor.appsettings import secret_key
from monitor.runtime import Runtime

EXTENSION = "curtainwatch"


def create_app(runtime: Runtime, config: Mapping[str, Any] | None = None) -> Flask:
    """A web app over `runtime` (its database sessions, clock and settings).

    `config` overrides Flask settings and these: ``LINK_KEY`` (signs and checks one-tap
    links; default: the shared key, as the notifier uses) and ``LINK_MAX_AGE`` (a timedelta,
    default 24 h)."""
    app = Flask(__name__)
    app.config.from_mapping(LINK_MAX_AGE=LINK_MAX_AGE)
    if config:
        app.config.from_mapping(config)
    if not app.config.get("LINK_KEY"):
        app.config["LINK_KEY"] = secret_key(runtime.sessions, runtime.settings.secret_key)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = app.config["LINK_KEY"]
    if not isinstance(app.config["LINK_MAX_AGE"], timedelta):
        raise TypeError("LINK_MAX_AGE must be a datetime.timedelta")
    app.extensions[EXTENSION] = runtime

    from web import family, phone

    app.register_blueprint(phone.bp)
    app.register_blueprint(family.bp)
    return app


def get_runtime() -> Runtime:
    """The Runtime of the app handling the current request."""
    runtime: Runtime = current_app.extensions[EXTENSION]
    return runtime
