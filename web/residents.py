"""Resident pages: details, devices, routines, today's timeline, 30-day chart. (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("residents", __name__, url_prefix="/residents")
