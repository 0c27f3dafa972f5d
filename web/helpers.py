"""What every blueprint shares: the running instance of the current request, the
community's time zone, times and stored messages in the reader's language. Blueprints
import these from here, never from the factory (web.app), as in Flask's tutorial."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, g
from flask_babel import format_datetime, gettext
from flask_babel import lazy_gettext as _l

from monitor.instance import Instance
from monitor.messages import Local, Message, say_or
from monitor.rules import day_marks

EXTENSION = "curtainwatch"
LANGUAGES = {"zh_CN": "中文", "en": "English"}
# How an alert ended, for every page that shows it: the first five are what a volunteer may
# choose (alerts.tokens.OUTCOMES, on the phone page and the dashboard); the rest curtainwatch
# records itself.
ALERT_OUTCOME_LABELS = {
    "fine": _l("All fine"),
    "needed_help": _l("Needed help"),
    "emergency": _l("Called emergency services (120)"),
    "false_alarm_away": _l("False alarm: away from home"),
    "sensor_problem": _l("Sensor problem"),
    "late": _l("Done late"),
    "activity_resumed": _l("Activity resumed"),
    "back_online": _l("Sensor back online"),
    "battery_replaced": _l("Battery replaced"),
    "device_moved": _l("Sensor moved to another resident"),
    "device_removed": _l("Sensor removed"),
}


def get_runtime() -> Instance:
    """The running instance behind the app handling the current request."""
    runtime: Instance = current_app.extensions[EXTENSION]
    return runtime


def community_zone() -> ZoneInfo:
    """The community's time zone (from its file), cached per request."""
    if "community_zone" not in g:
        with get_runtime().sessions() as s:
            g.community_zone = day_marks.community_zone(s)
    zone: ZoneInfo = g.community_zone
    return zone


def local_time(value: datetime | None, fmt: str = "yyyy-MM-dd HH:mm") -> str:
    """A stored UTC time shown in the community's zone (`fmt` is a CLDR pattern or one of
    Babel's short/medium/long)."""
    if value is None:
        return ""
    return format_datetime(value, fmt)


def said(message: Message | None, english: str = "", local: Local = local_time) -> str:
    """A message kept by the domain (monitor.messages) in the reader's language, its times
    by `local` (default: the community's zone); `english` when there is none (older rows)
    or when a stored one cannot be said."""
    return say_or(gettext, message, english, local)
