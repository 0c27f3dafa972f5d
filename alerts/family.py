"""Family opt-in with consent (issue 3, point 5): staff invite a relative of one resident,
the relative reads exactly what will be shared, chooses where messages go and confirms; the
consent time and text version are stored; every message to them carries a stop link.

Invitation token: ``itsdangerous.URLSafeSerializer`` over ``[resident_id, issued_at, nonce,
ttl_s]`` (whole Unix seconds on the injected clock), signed with the shared key
(``monitor.appsettings.secret_key``) under its own salt. Single use: accepting stores an
``AppSetting`` row ``invite-used:<nonce>`` (its primary key makes a second use fail even when
two accepts race). Issuing stores ``invite:<nonce>`` (who made it, when, for whom) for the
record.

Stop token: ``[person_id]`` under another salt. It never expires: a stop link in an old
message must still work. Stopping twice is harmless.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import apprise
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from monitor.appsettings import shared_secret
from monitor.db import dialect_insert_for, won
from monitor.models import AppSetting, Person, Resident, table
from monitor.rules.windows import next_daily

CONSENT_VERSION = "2026-11-v1"
INVITE_TTL = timedelta(days=7)
INVITE_SALT = "curtainwatch.family-invite.v1"
STOP_SALT = "curtainwatch.family-stop.v1"
CLOCK_SKEW = timedelta(minutes=5)
LANGUAGES = ("zh-CN", "en")
NAME_MAX = 200
URLS_MAX = 5

CONSENT_TEXT = {
    "en": (
        "What you will receive: messages about this one relative only, never about anyone "
        "else. We tell you when they miss a daily routine (for example the curtains are not "
        "opened in the morning), when they press their help card, and when there has been no "
        "activity at home for a long time, and afterwards how it ended (who went to look and "
        "what they found). If you choose a time, you also get a short daily summary (for "
        "example \u201ccurtains opened 07:42, light on 18:10, all is well\u201d).\n"
        "Who sees what: the community staff and the volunteers for the building already "
        "receive these alerts and go to look first; you hear about an alert only if nobody "
        "has taken care of it after a while. We keep your name, language, notification "
        "addresses and the time you agreed, and use them only to send you these messages.\n"
        "How to stop: every message ends with a stop link. Open it and confirm, and all "
        "messages to you about your relative stop at once. You can also ask the community "
        "staff."
    ),
    "zh-CN": (
        "您将收到：仅关于这一位亲人的消息，绝不涉及其他任何人。当老人错过日常作息（例如早上没有拉开"
        "窗帘）、按下求助卡、或家中长时间没有活动时，我们会通知您，并在事后告诉您处理结果（谁去查看、"
        "发现了什么）。如果您选择了时间，还会每天收到一条简短的日报（例如“拉开窗帘 07:42，开灯 "
        "18:10，一切安好”）。\n"
        "谁能看到：社区工作人员和本楼志愿者本来就会收到这些提醒，并先去查看；只有在一段时间内无人处理时，"
        "才会通知您。我们保存您的姓名、语言、通知地址和同意时间，仅用于向您发送这些消息。\n"
        "如何停止：每条消息末尾都有停止链接。打开并确认后，关于这位亲人的所有消息会立即停止。"
        "您也可以联系社区工作人员。"
    ),
}


def consent_text(language: str) -> str:
    """The exact text a family member agrees to (version CONSENT_VERSION)."""
    return CONSENT_TEXT[language if language in CONSENT_TEXT else "en"]


class InvitationError(Exception):
    """An invitation that cannot be used; the message is fit to show to a person."""


class InviteTampered(InvitationError):
    def __init__(self) -> None:
        super().__init__(
            "This invitation link is not valid. It may have been cut off or changed when it "
            "was copied. Open it again from the message, or ask the community staff."
        )


class InviteExpired(InvitationError):
    def __init__(self, resident_id: str) -> None:
        super().__init__(
            "This invitation has expired. Please ask the community staff for a new one."
        )
        self.resident_id = resident_id


class InviteUsed(InvitationError):
    def __init__(self, resident_id: str) -> None:
        super().__init__(
            "This invitation has already been used. If that was not you, or you want to "
            "change your details, please ask the community staff for a new one."
        )
        self.resident_id = resident_id


class InviteGone(InvitationError):
    def __init__(self, resident_id: str) -> None:
        super().__init__(
            "This invitation is for someone we no longer look after. "
            "Please ask the community staff."
        )
        self.resident_id = resident_id


class StopTampered(Exception):
    """A stop link not signed by us (or for a person who no longer exists)."""

    def __init__(self) -> None:
        super().__init__(
            "This stop link is not valid. Open it again from the message, or ask the "
            "community staff to stop your messages."
        )


class InvalidForm(ValueError):
    """A sign-up form that cannot be stored. `field` is ``name``, ``language``, ``notify``
    or ``digest_at``; for ``notify``, `line` (1-based) and `value` name the bad address."""

    def __init__(self, field: str, message: str, line: int | None = None, value: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.line = line
        self.value = value


def invite(
    session: Session,
    resident_id: str,
    created_by: str,
    now: datetime,
    ttl: timedelta = INVITE_TTL,
    *,
    key: str | None = None,
) -> str:
    """A single-use invitation token for a relative of `resident_id`, good for `ttl`."""
    if session.get(Resident, resident_id) is None:
        raise ValueError(f"no resident {resident_id!r}")
    nonce = secrets.token_urlsafe(16)
    issued = int(now.timestamp())
    session.add(
        AppSetting(
            key=f"invite:{nonce}",
            value=json.dumps(
                {"resident_id": resident_id, "created_by": created_by, "issued_at": issued}
            ),
        )
    )
    payload = [resident_id, issued, nonce, int(ttl.total_seconds())]
    return URLSafeSerializer(shared_secret(session, key), salt=INVITE_SALT).dumps(payload)


def read_invite(
    session: Session, token: str, now: datetime, *, key: str | None = None
) -> tuple[Resident, str]:
    """(resident, nonce) of a genuine, unexpired, unused invitation; raises an
    InvitationError subclass otherwise."""
    try:
        payload = URLSafeSerializer(shared_secret(session, key), salt=INVITE_SALT).loads(token)
    except BadSignature as e:
        raise InviteTampered() from e
    if (
        not isinstance(payload, list)
        or len(payload) != 4
        or not isinstance(payload[0], str)
        or not isinstance(payload[2], str)
        or not all(isinstance(payload[i], int) and not isinstance(payload[i], bool) for i in (1, 3))
    ):
        raise InviteTampered()
    resident_id, issued, nonce, ttl_s = payload
    age = now.timestamp() - issued
    if age < -CLOCK_SKEW.total_seconds():
        raise InviteTampered()
    if session.get(AppSetting, f"invite-used:{nonce}") is not None:
        raise InviteUsed(resident_id)
    if age > ttl_s:
        raise InviteExpired(resident_id)
    resident = session.get(Resident, resident_id)
    if resident is None or not resident.active:
        raise InviteGone(resident_id)
    return resident, nonce


def parse_urls(text: str | list[str]) -> list[str]:
    """Notification addresses, one per line (blank lines ignored), each one Apprise accepts;
    raises InvalidForm naming the first bad line."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    urls: list[str] = []
    for n, raw in enumerate(lines, start=1):
        url = raw.strip()
        if not url:
            continue
        if not apprise.Apprise().add(url):
            raise InvalidForm(
                "notify",
                f"Line {n} ({url}) is not an address we can send to.",
                line=n,
                value=url,
            )
        urls.append(url)
    if not urls:
        raise InvalidForm("notify", "Please give at least one address to send messages to.")
    if len(urls) > URLS_MAX:
        raise InvalidForm(
            "notify", f"Please give at most {URLS_MAX} addresses.", value=str(len(urls))
        )
    return urls


def parse_digest_at(text: str) -> time | None:
    """ "HH:MM" (24-hour) or empty for no daily summary."""
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if not m:
        raise InvalidForm("digest_at", f"{text!r} is not a time like 20:00.", value=text)
    return time(int(m.group(1)), int(m.group(2)))


def accept(
    session: Session,
    token: str,
    name: str,
    language: str,
    notify_urls: str | list[str],
    digest_at: str,
    now: datetime,
    *,
    key: str | None = None,
) -> Person:
    """Check the invitation and the form, then record the family member and their consent
    (date, time and text version). The invitation cannot be used again."""
    resident, nonce = read_invite(session, token, now, key=key)
    name = name.strip()
    if not name:
        raise InvalidForm("name", "Please give your name.")
    if len(name) > NAME_MAX:
        raise InvalidForm("name", f"Your name is longer than {NAME_MAX} characters.")
    if language not in LANGUAGES:
        raise InvalidForm("language", "Please choose a language.", value=language)
    urls = parse_urls(notify_urls)
    at = parse_digest_at(digest_at)
    person = Person(
        id=f"f-{secrets.token_hex(6)}",
        name=name,
        role="family",
        language=language,
        buildings=[],
        resident_id=resident.id,
        consent=now.astimezone(ZoneInfo(resident.timezone)).date(),
        consented_at=now,
        consent_version=CONSENT_VERSION,
        notify=urls,
        rota=[],
        digest_at=f"{at:%H:%M}" if at else None,
        digest_next_at=next_daily(at, ZoneInfo(resident.timezone), now) if at else None,
    )
    # The used-marker's primary key settles a race between two accepts of one invitation.
    mark = dialect_insert_for(session, table(AppSetting)).values(
        key=f"invite-used:{nonce}", value=person.id
    )
    if not won(session.execute(mark.on_conflict_do_nothing(index_elements=["key"]))):
        raise InviteUsed(resident.id)
    session.add(person)
    session.flush()
    return person


def opt_out_token(key: str, person_id: str) -> str:
    """The stop link's token for `person_id` (does not expire)."""
    return URLSafeSerializer(key, salt=STOP_SALT).dumps([person_id])


def read_opt_out(session: Session, token: str, *, key: str | None = None) -> Person:
    """The family member a genuine stop token names; raises StopTampered otherwise."""
    try:
        payload = URLSafeSerializer(shared_secret(session, key), salt=STOP_SALT).loads(token)
    except BadSignature as e:
        raise StopTampered() from e
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], str):
        raise StopTampered()
    person = session.get(Person, payload[0])
    if person is None or person.role != "family":
        raise StopTampered()
    return person


def opt_out(session: Session, token: str, now: datetime, *, key: str | None = None) -> Person:
    """Stop every message to the family member the token names. Idempotent: the first time
    is kept."""
    person = read_opt_out(session, token, key=key)
    if person.opted_out_at is None:
        person.opted_out_at = now
        person.digest_next_at = None
    session.flush()
    return person
