"""Operations endpoints: /healthz and /metrics (Prometheus). (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ops", __name__)
