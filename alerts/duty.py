"""Who is on duty and who is asleep: weekly rotas and quiet hours, read in local time.
Pure functions of a person's settings and a local moment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.rules.windows import wall_time


def on_duty(rota: list[dict[str, Any]], moment: datetime) -> bool:
    """Is a person with this rota on duty at local `moment`? An empty rota: always."""
    if not rota:
        return True
    t, day = moment.time(), moment.weekday()
    for spell in rota:
        start, end, days = wall_time(spell["from"]), wall_time(spell["to"]), spell["days"]
        if start < end:
            if day in days and start <= t < end:
                return True
        # past midnight: the spell started yesterday evening or starts this evening
        elif (day in days and t >= start) or ((day - 1) % 7 in days and t < end):
            return True
    return False


def quiet_until(quiet: dict[str, Any] | None, moment: datetime) -> datetime | None:
    """If local `moment` falls in the quiet hours, when they end (local); else None."""
    if not quiet:
        return None
    start, end, t = wall_time(quiet["from"]), wall_time(quiet["to"]), moment.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    ends = moment.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return ends if ends > moment else ends + timedelta(days=1)
