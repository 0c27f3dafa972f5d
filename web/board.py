"""The today board: every resident as a tile, by building. (Being built.)"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("board", __name__)


@bp.route("/")
@login_required
def index() -> str:
    return render_template("dash/base.html")
