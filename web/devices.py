"""Devices and data quality: offline, low battery, unknown devices, dead letters. (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("devices", __name__, url_prefix="/devices")
