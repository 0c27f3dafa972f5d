"""Operations endpoints for load balancers, uptime checks and Prometheus: /healthz and
/metrics. No sign-in. What they say is decided in monitor/ (monitor.pages.health,
monitor.pages.metrics); this module only renders it.

- ``GET /healthz``: JSON, 200 when healthy, 503 when not (see monitor.pages.health for the checks).
  Never cached.
- ``GET /metrics``: the Prometheus text format, from a CollectorRegistry of this app's own
  (tests and a multi-app process must not share the global default registry). Open by
  default; when a metrics token is set (setting ``metrics_token``, i.e.
  ``CURTAINWATCH_METRICS_TOKEN``), a scrape must send ``Authorization: Bearer <token>``.
  /healthz stays open either way: load balancers do not carry tokens."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector
from werkzeug.wrappers import Response

from monitor.pages.health import check_health
from monitor.pages.metrics import MetricsCollector
from web.helpers import EXTENSION, get_runtime

bp = Blueprint("ops", __name__)

REGISTRY_KEY = "curtainwatch.metrics"


@bp.record_once
def _make_registry(state: BlueprintSetupState) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(state.app.extensions[EXTENSION]))
    ProcessCollector(registry=registry)  # memory, CPU, open files of this process
    state.app.extensions[REGISTRY_KEY] = registry


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    runtime = get_runtime()
    with runtime.sessions() as session:
        health = check_health(runtime, session, runtime.clock.now())
    resp = jsonify(health.as_json())
    resp.headers["Cache-Control"] = "no-store"
    return resp, 200 if health.ok else 503


@bp.get("/metrics")
def metrics() -> Response:
    token = metrics_token()
    if token and not _bearer_matches(token):
        resp = jsonify({"error": "a metrics token is required (Authorization: Bearer ...)"})
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="curtainwatch metrics"'
        return resp
    body = generate_latest(current_app.extensions[REGISTRY_KEY])
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)


def metrics_token() -> str:
    """The configured scrape token, or "" for an open /metrics."""
    return get_runtime().settings.metrics_token


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
