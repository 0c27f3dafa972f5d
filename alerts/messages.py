"""What a notification says: short, in the reader's language (zh-CN or en), who, where,
what and since when, with a link. Functions of their arguments only (the catalogue they
read through `translator` is loaded once and never changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.messages import Local, Message, say_or, translator


@dataclass(frozen=True)
class AlertFacts:
    kind: str
    resident_name: str
    building: str
    unit: str
    timezone: str
    routine_kind: str | None
    due: datetime | None
    raised: datetime
    device_id: str | None
    detail: str  # English
    detail_message: Message | None = None  # the same, to say in the reader's language


WHAT = {
    "en": {
        "help": "asked for help (help card)",
        "inactivity": "no activity at home",
        "device_offline": "a sensor is offline",
        "low_battery": "a sensor's battery is low",
        "system": "system problem",
        "curtain_open": "curtain not opened",
        "curtain_close": "curtain not closed",
        "light_on": "light not switched on",
        "door": "door not used",
        "activity": "no activity in the usual window",
    },
    "zh-CN": {
        "help": "求助（求助卡）",
        "inactivity": "家中长时间无活动",
        "device_offline": "传感器离线",
        "low_battery": "传感器电量低",
        "system": "系统故障",
        "curtain_open": "窗帘未按时拉开",
        "curtain_close": "窗帘未按时拉上",
        "light_on": "未按时开灯",
        "door": "未见开门",
        "activity": "常规时段内无活动",
    },
}
SINCE = {"en": "since", "zh-CN": "自"}
OPEN = {"en": "Open", "zh-CN": "查看"}


def render(facts: AlertFacts, language: str, link: str | None) -> tuple[str, str]:
    """(title, body) for one person; `link` None for people with no page to act on (family).
    Unknown languages fall back to English."""
    lang = language if language in WHAT else "en"
    key = (
        facts.routine_kind if facts.kind == "missed_routine" and facts.routine_kind else facts.kind
    )
    what = WHAT[lang].get(key, key)
    where = f"{facts.building}-{facts.unit}" if facts.unit else facts.building
    zone = ZoneInfo(facts.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%m-%d %H:%M")

    when = local(facts.due or facts.raised)
    if facts.kind == "system":
        title = f"{what}: {_detail(facts, lang, local)}"
    else:
        title = f"{facts.resident_name} ({where}): {what}"
    body = f"{title}, {SINCE[lang]} {when}."
    if facts.device_id:
        body += f" [{facts.device_id}]"
    return title, f"{body}\n{OPEN[lang]}: {link}" if link else body


def _detail(facts: AlertFacts, language: str, local: Local) -> str:
    return say_or(translator(language), facts.detail_message, facts.detail, local)
