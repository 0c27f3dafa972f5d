"""The alerts queue and history for staff and volunteers. (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("alerts", __name__, url_prefix="/alerts")
