"""Administration: residents, devices, people, rotas, users, imports. (Being built.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
