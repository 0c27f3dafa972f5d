"""What a notification says: short, in the reader's language (zh-CN or en), who, where,
what and since when, with a link. Functions of their arguments only (the catalogue they
read through `translator` is loaded once and never changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.messages import N_, Local, Message, say_or, translator


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


# What happened, by alert kind (or, for a missed routine, the routine's kind): English
# message ids of the catalogue (web/translations), said in the reader's language.
WHAT = {
    "help": N_("asked for help (help card)"),
    "inactivity": N_("no activity at home"),
    "device_offline": N_("a sensor is offline"),
    "low_battery": N_("a sensor's battery is low"),
    "system": N_("system problem"),
    "curtain_open": N_("curtain not opened"),
    "curtain_close": N_("curtain not closed"),
    "light_on": N_("light not switched on"),
    "door": N_("door not used"),
    "activity": N_("no activity in the usual window"),
}
# The languages notifications are written in; a person with another one reads English.
LANGUAGES = ("zh-CN", "en")


def language_or_english(language: str | None) -> str:
    """The language to write to a person in: theirs if we write it, else English."""
    return language if language in LANGUAGES else "en"


def what_happened(key: str, language: str) -> str:
    """WHAT for `key` in the person's `language`; an unknown key as it is."""
    msgid = WHAT.get(key)
    return translator(language_or_english(language))(msgid) if msgid else key


def render(facts: AlertFacts, language: str, link: str | None) -> tuple[str, str]:
    """(title, body) for one person; `link` None for people with no page to act on (family).
    Unknown languages fall back to English."""
    lang = language_or_english(language)
    gettext = translator(lang)
    key = (
        facts.routine_kind if facts.kind == "missed_routine" and facts.routine_kind else facts.kind
    )
    what = what_happened(key, lang)
    where = f"{facts.building}-{facts.unit}" if facts.unit else facts.building
    zone = ZoneInfo(facts.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%m-%d %H:%M")

    when = local(facts.due or facts.raised)
    if facts.kind == "system":
        title = f"{what}: {_detail(facts, lang, local)}"
    else:
        title = f"{facts.resident_name} ({where}): {what}"
    body = gettext("%(title)s, since %(when)s.", title=title, when=when)
    if facts.device_id:
        body += f" [{facts.device_id}]"
    if link:
        body += "\n" + gettext("Open: %(link)s", link=link)
    return title, body


def _detail(facts: AlertFacts, language: str, local: Local) -> str:
    return say_or(translator(language), facts.detail_message, facts.detail, local)
