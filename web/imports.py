"""Importing the community YAML and spreadsheets (CSV, XLSX) with a preview. (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("imports", __name__, url_prefix="/admin/import")
