"""The family pages (issue 3, point 5): the invitation a staff member sends to a relative,
`/family/invite/<token>` (who it is about, exactly what will be shared, a form to choose
where messages go and an optional daily summary time, then a confirmation), and the stop
link every family message carries, `/family/stop/<token>`.

Same style as the phone page: plain HTML, inline CSS, 360 px, zh-CN or en (the invitation
starts in Chinese with a switch to English; the stop page speaks the person's language).
Every rule lives in `alerts.family`; this module reads the request, calls it and renders the
answer or a refusal with the right status code. Forms carry an HMAC of the URL's token
(`form_token`), as on the phone page; a POST without it is refused."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from alerts.family import (
    CONSENT_VERSION,
    LANGUAGES,
    URLS_MAX,
    InvalidForm,
    InviteExpired,
    InviteGone,
    InviteTampered,
    InviteUsed,
    StopTampered,
    accept,
    consent_text,
    opt_out,
    read_invite,
    read_opt_out,
)
from monitor.models import Resident
from web import forms
from web.helpers import get_runtime

bp = Blueprint("family", __name__, url_prefix="/family")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "switch": "中文",
        "invite_title": "Messages about {name}",
        "invite_intro": (
            "The community staff invite you to receive messages about {name}. "
            "Please read what will be shared before you agree."
        ),
        "what_title": "What you agree to",
        "version": "Text version {version}",
        "form_title": "Your details",
        "name": "Your name",
        "language": "Language of the messages",
        "notify": "Where to send messages (one address per line, up to {n})",
        "notify_help": (
            "For example ntfy://ntfy.sh/your-topic (the ntfy app), "
            "mailto://user:password@example.com (email), "
            "tgram://bot-token/chat-id (Telegram)."
        ),
        "digest_at": "Daily summary at (optional, e.g. 20:00; leave empty for none)",
        "agree": "I agree: send me these messages",
        "done_title": "Thank you, {person}",
        "done_body": (
            "You will now receive messages about {name}. Each message ends with a link to "
            "stop them."
        ),
        "done_digest": "A daily summary will arrive at {at}.",
        "done_no_digest": "You chose no daily summary.",
        "error_name": "Please give your name.",
        "error_language": "Please choose a language.",
        "error_notify_line": (
            "Line {line} is not an address we can send to: {value}. Please check it against "
            "the examples."
        ),
        "error_notify_none": "Please give at least one address to send messages to.",
        "error_notify_many": "Please give at most {n} addresses.",
        "error_digest_at": "“{value}” is not a time like 20:00.",
        "stop_title": "Stop all messages about {name}",
        "stop_body": (
            "{person}, after you confirm you will receive no more messages about {name}: no "
            "alerts and no daily summary."
        ),
        "stop": "Stop all messages",
        "stopped_title": "Messages stopped",
        "stopped_body": (
            "You will receive no more messages about {name}. To start again, please ask the "
            "community staff."
        ),
        "expired_title": "This invitation has expired",
        "expired_body": "Please ask the community staff for a new one.",
        "used_title": "This invitation has already been used",
        "used_body": (
            "If that was not you, or you want to change your details, please ask the "
            "community staff for a new one."
        ),
        "gone_title": "This invitation is no longer valid",
        "gone_body": "Please ask the community staff.",
        "tampered_title": "This link is not valid",
        "tampered_body": (
            "It may have been cut off or changed when it was copied. Open it again from the "
            "message, or ask the community staff."
        ),
        "csrf_title": "Please use the button on the page",
        "csrf_body": (
            "This request did not come from our page, so nothing was changed. Open the link "
            "again and use the button there."
        ),
    },
    "zh-CN": {
        "switch": "English",
        "invite_title": "关于{name}的消息",
        "invite_intro": (
            "社区工作人员邀请您接收关于{name}的消息。同意之前，请先阅读将与您分享的内容。"
        ),
        "what_title": "您同意的内容",
        "version": "文本版本 {version}",
        "form_title": "您的信息",
        "name": "您的姓名",
        "language": "消息语言",
        "notify": "消息发送地址（每行一个，最多 {n} 个）",
        "notify_help": (
            "例如 ntfy://ntfy.sh/your-topic（ntfy 应用）、"
            "mailto://user:password@example.com（电子邮件）、"
            "tgram://bot-token/chat-id（Telegram）。"
        ),
        "digest_at": "每日日报时间（可选，例如 20:00；留空则不发送）",
        "agree": "我同意：请给我发送这些消息",
        "done_title": "谢谢您，{person}",
        "done_body": "您将开始收到关于{name}的消息。每条消息末尾都有停止链接。",
        "done_digest": "每日日报将在 {at} 发送。",
        "done_no_digest": "您选择了不接收每日日报。",
        "error_name": "请填写您的姓名。",
        "error_language": "请选择语言。",
        "error_notify_line": "第 {line} 行不是可以发送的地址：{value}。请对照示例检查。",
        "error_notify_none": "请至少填写一个发送地址。",
        "error_notify_many": "最多填写 {n} 个地址。",
        "error_digest_at": "“{value}”不是类似 20:00 的时间。",
        "stop_title": "停止接收关于{name}的所有消息",
        "stop_body": "{person}，确认后您将不再收到关于{name}的任何消息：没有提醒，也没有每日日报。",
        "stop": "停止所有消息",
        "stopped_title": "已停止发送",
        "stopped_body": "您将不再收到关于{name}的消息。如需重新接收，请联系社区工作人员。",
        "expired_title": "此邀请已过期",
        "expired_body": "请联系社区工作人员获取新的邀请。",
        "used_title": "此邀请已被使用",
        "used_body": "如果不是您本人使用的，或您想修改信息，请联系社区工作人员获取新的邀请。",
        "gone_title": "此邀请已失效",
        "gone_body": "请联系社区工作人员。",
        "tampered_title": "此链接无效",
        "tampered_body": "链接可能在复制时被截断或修改。请从消息中重新打开，或联系社区工作人员。",
        "csrf_title": "请使用页面上的按钮",
        "csrf_body": (
            "此请求不是从我们的页面发出的，未做任何更改。请重新打开链接，再点页面上的按钮。"
        ),
    },
}
BOTH = ("zh-CN", "en")
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}


class CrossSite(Exception):
    """A POST that did not come from the page's own form."""

    def __init__(self, language: str | None) -> None:
        super().__init__("cross-site form post")
        self.language = language


def form_token(kind: str, token: str) -> str:
    """The hidden form field for /family/<kind>/<token> (see web/forms.py)."""
    return forms.form_token(f"family-{kind}", token)


def _check_form(kind: str, token: str, language: str | None) -> None:
    if not forms.form_ok(f"family-{kind}", token):
        raise CrossSite(language)


def _key() -> str:
    key: str = current_app.config["LINK_KEY"]
    return key


def _page_language() -> str:
    lang = request.values.get("lang") or request.form.get("language") or "zh-CN"
    return lang if lang in LABELS else "zh-CN"


@bp.get("/invite/<token>")
def invitation(token: str) -> tuple[str, int]:
    rt = get_runtime()
    with rt.sessions() as s:
        resident, _ = read_invite(s, token, rt.clock.now(), key=_key())
        name = resident.name
    return _invite_page(token, name, _page_language()), 200


@bp.post("/invite/<token>")
def accept_invitation(token: str) -> tuple[str, int]:
    rt = get_runtime()
    lang = _page_language()
    with rt.sessions() as s:
        resident, _ = read_invite(s, token, rt.clock.now(), key=_key())
        name = resident.name
    _check_form("invite", token, lang)
    form = {k: request.form.get(k, "") for k in ("name", "language", "notify", "digest_at")}
    try:
        with rt.sessions.begin() as s:
            person = accept(
                s,
                token,
                form["name"],
                form["language"],
                form["notify"],
                form["digest_at"],
                rt.clock.now(),
                key=_key(),
            )
            person_name, person_lang, digest = person.name, person.language, person.digest_at
    except InvalidForm as e:
        return _invite_page(token, name, lang, error=_form_error(lang, e), form=form), 400
    t = LABELS[person_lang]
    return render_template(
        "family/done.html",
        lang=person_lang,
        title=t["done_title"].format(person=person_name),
        body=t["done_body"].format(name=name),
        digest=t["done_digest"].format(at=digest) if digest else t["done_no_digest"],
    ), 200


def _form_error(lang: str, e: InvalidForm) -> str:
    t = LABELS[lang]
    if e.field == "notify":
        if e.line is not None:
            return t["error_notify_line"].format(line=e.line, value=e.value)
        if e.value:  # how many were given, when too many
            return t["error_notify_many"].format(n=URLS_MAX)
        return t["error_notify_none"]
    if e.field == "digest_at":
        return t["error_digest_at"].format(value=e.value)
    return t[f"error_{e.field}"]


def _invite_page(
    token: str, name: str, lang: str, error: str | None = None, form: dict[str, str] | None = None
) -> str:
    form = form or {}
    t = LABELS[lang]
    other = "en" if lang == "zh-CN" else "zh-CN"
    return render_template(
        "family/invite.html",
        lang=lang,
        t=t,
        title=t["invite_title"].format(name=name),
        intro=t["invite_intro"].format(name=name),
        consent=consent_text(lang).split("\n"),
        version=t["version"].format(version=CONSENT_VERSION),
        notify_label=t["notify"].format(n=URLS_MAX),
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        chosen=form.get("language") or lang,
        switch_lang=other,
        token=token,
        form_token=form_token("invite", token),
        error=error,
        form=form,
    )


@bp.get("/stop/<token>")
def stop_page(token: str) -> tuple[str, int]:
    with get_runtime().sessions() as s:
        person = read_opt_out(s, token, key=_key())
        lang, who, stopped = _lang(person.language), person.name, person.opted_out_at
        name = _resident_name(s, person.resident_id)
    t = LABELS[lang]
    if stopped is not None:
        return _stopped(lang, name), 200
    return render_template(
        "family/stop.html",
        lang=lang,
        t=t,
        title=t["stop_title"].format(name=name),
        body=t["stop_body"].format(person=who, name=name),
        token=token,
        form_token=form_token("stop", token),
    ), 200


@bp.post("/stop/<token>")
def stop(token: str) -> tuple[str, int]:
    rt = get_runtime()
    with rt.sessions() as s:
        lang = _lang(read_opt_out(s, token, key=_key()).language)
    _check_form("stop", token, lang)
    with rt.sessions.begin() as s:
        person = opt_out(s, token, rt.clock.now(), key=_key())
        name = _resident_name(s, person.resident_id)
    return _stopped(lang, name), 200


def _stopped(lang: str, name: str) -> str:
    t = LABELS[lang]
    return render_template(
        "family/done.html",
        lang=lang,
        title=t["stopped_title"],
        body=t["stopped_body"].format(name=name),
        digest=None,
    )


def _resident_name(session: Session, resident_id: str | None) -> str:
    resident = session.get(Resident, resident_id) if resident_id else None
    return resident.name if resident else "-"


def _lang(language: str | None) -> str:
    return language if language in LABELS else "zh-CN"


def _refusal(key: str, languages: tuple[str, ...], status: int) -> tuple[str, int]:
    texts = [
        {
            "lang": lang,
            "title": LABELS[lang][f"{key}_title"],
            "body": LABELS[lang][f"{key}_body"],
        }
        for lang in languages
    ]
    return render_template(
        "phone/refused.html", lang=languages[0], t=LABELS[languages[0]], texts=texts, back=None
    ), status


@bp.errorhandler(InviteExpired)
def expired(e: InviteExpired) -> tuple[str, int]:
    return _refusal("expired", BOTH, 410)


@bp.errorhandler(InviteGone)
def gone(e: InviteGone) -> tuple[str, int]:
    return _refusal("gone", BOTH, 410)


@bp.errorhandler(InviteUsed)
def used(e: InviteUsed) -> tuple[str, int]:
    return _refusal("used", BOTH, 409)


@bp.errorhandler(InviteTampered)
@bp.errorhandler(StopTampered)
def tampered(e: Exception) -> tuple[str, int]:
    return _refusal("tampered", BOTH, 403)


@bp.errorhandler(CrossSite)
def cross_site(e: CrossSite) -> tuple[str, int]:
    return _refusal("csrf", (e.language,) if e.language in LABELS else BOTH, 403)


@bp.after_request
def private(response: Response) -> Response:
    """Names and live links: never cache, never leak the URL, never frame, load nothing
    from elsewhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response
