"""The volunteer phone page, reached from the link in a notification: `/m/<token>`.

Shows who, where, what and since when, the alert's status and who claimed it; a big
"I'm going" button, then (for the claimer) a resolve form with an outcome and a short note.
Plain HTML with a little inline CSS, made for a 360-px-wide screen, in the person's language
(zh-CN or en). Who may do what is decided by `alerts.tokens`; this module only reads the
request, calls it, and renders the answer or a friendly refusal with the right status code.

Cross-site POSTs: the link token is in the URL, so every form also carries a hidden field
holding an HMAC of that token under the app's key (`form_token`); a POST without the right
value, or one a browser marks as coming from another site (`Sec-Fetch-Site`), is refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import force_locale
from werkzeug.wrappers import Response

from alerts.tokens import (
    NOTE_MAX,
    OUTCOMES,
    AlertView,
    Invalid,
    LinkExpired,
    LinkTampered,
    Refused,
    claim_by_link,
    read_link_token,
    resolve_by_link,
    view,
)
from monitor.messages import catalogue_locale
from monitor.models import Person
from web import forms
from web.helpers import get_runtime, said

bp = Blueprint("phone", __name__, url_prefix="/m")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "page_title": "Alert",
        "who": "Who",
        "where": "Where",
        "what": "What",
        "since": "Since",
        "status": "Status",
        "details": "Details",
        "min_ago": "{n} min ago",
        "h_ago": "{h} h {m} min ago",
        "status_open": "Nobody has said they are going yet.",
        "status_mine": "You are going (since {at}).",
        "status_other": "{name} is going (since {at}).",
        "status_resolved": "Resolved by {name} at {at}: {outcome}.",
        "going": "I'm going",
        "going_hint": "Tap to tell everyone you are on your way. Staff will not be paged.",
        "resolve_title": "What did you find?",
        "note": "Note (optional, up to {n} characters)",
        "resolve": "Done: record this",
        "signed_in_as": "This link is for {name}.",
        "back": "Back to the alert",
        "error_outcome": "Please choose what you found.",
        "error_note": "The note is too long (at most {n} characters).",
        "outcome_fine": "All fine",
        "outcome_needed_help": "Needed help",
        "outcome_emergency": "Called emergency services (120)",
        "outcome_false_alarm_away": "False alarm: away from home",
        "outcome_sensor_problem": "Sensor problem",
        "expired_title": "This link has expired",
        "expired_body": (
            "This link has expired, ask staff for a new one. "
            "Links in alert messages work for {hours} hours."
        ),
        "tampered_title": "This link is not valid",
        "tampered_body": (
            "It may have been cut off or changed when it was copied. Open it again from the "
            "message, or ask staff for a new one."
        ),
        "unknown_person_title": "This link is not for anyone on our list",
        "unknown_person_body": "Your name is no longer on the list. Please ask staff.",
        "not_a_responder_title": "This page is for volunteers and staff",
        "not_a_responder_body": (
            "Volunteers and community staff are looking after this alert. If you are "
            "worried, call the community staff."
        ),
        "not_your_building_title": "Not your building",
        "not_your_building_body": "This alert is for building {building}, which you do not cover.",
        "no_building_body": "This alert is not about a building you cover.",
        "no_alert_title": "Alert not found",
        "no_alert_body": "This alert no longer exists. Please ask staff.",
        "claimed_by_other_title": "{other} is going",
        "claimed_by_other_body": (
            "{other} said they are going to this alert first. Thank you, there is nothing "
            "more for you to do."
        ),
        "resolved_title": "Already resolved",
        "resolved_body": "{other} has already resolved this alert. Thank you.",
        "not_claimed_by_you_title": "Tap “I'm going” first",
        "not_claimed_by_you_body": "Only the person who is going can record what they found.",
        "csrf_title": "Please use the button on the alert page",
        "csrf_body": (
            "This request did not come from the alert page, so nothing was changed. Open the "
            "link from the message again and tap the button there."
        ),
    },
    "zh-CN": {
        "page_title": "提醒",
        "who": "老人",
        "where": "地址",
        "what": "情况",
        "since": "开始时间",
        "status": "状态",
        "details": "详情",
        "min_ago": "{n}分钟前",
        "h_ago": "{h}小时{m}分钟前",
        "status_open": "还没有人认领。",
        "status_mine": "您已认领，正在前往（{at}）。",
        "status_other": "{name} 正在前往（{at}）。",
        "status_resolved": "已由 {name} 于 {at} 处理：{outcome}。",
        "going": "我去看看",
        "going_hint": "点一下，告诉大家您正在前往。工作人员将不再被呼叫。",
        "resolve_title": "情况如何？",
        "note": "备注（可选，最多{n}字）",
        "resolve": "处理完成，提交",
        "signed_in_as": "此链接属于 {name}。",
        "back": "返回提醒页面",
        "error_outcome": "请选择处理结果。",
        "error_note": "备注太长（最多{n}字）。",
        "outcome_fine": "一切正常",
        "outcome_needed_help": "需要帮助",
        "outcome_emergency": "已呼叫急救（120）",
        "outcome_false_alarm_away": "误报：不在家",
        "outcome_sensor_problem": "传感器故障",
        "expired_title": "链接已过期",
        "expired_body": "链接已过期，请联系工作人员获取新链接。提醒消息中的链接{hours}小时内有效。",
        "tampered_title": "链接无效",
        "tampered_body": (
            "链接可能在复制时被截断或改动。请从消息中重新打开，或联系工作人员获取新链接。"
        ),
        "unknown_person_title": "此链接不属于名单上的任何人",
        "unknown_person_body": "您已不在名单上，请联系工作人员。",
        "not_a_responder_title": "此页面仅供志愿者和工作人员使用",
        "not_a_responder_body": (
            "志愿者和社区工作人员正在处理此提醒。如有担心，请致电社区工作人员。"
        ),
        "not_your_building_title": "不是您负责的楼栋",
        "not_your_building_body": "此提醒属于{building}号楼，不在您负责的楼栋范围内。",
        "no_building_body": "此提醒不属于您负责的楼栋。",
        "no_alert_title": "找不到此提醒",
        "no_alert_body": "此提醒已不存在，请联系工作人员。",
        "claimed_by_other_title": "{other} 正在前往",
        "claimed_by_other_body": "{other} 已先认领此提醒。谢谢您，无需再做什么。",
        "resolved_title": "已处理",
        "resolved_body": "{other} 已处理此提醒。谢谢您。",
        "not_claimed_by_you_title": "请先点“我去看看”",
        "not_claimed_by_you_body": "只有认领的人才能提交处理结果。",
        "csrf_title": "请使用提醒页面上的按钮",
        "csrf_body": (
            "此请求不是从提醒页面发出的，未做任何更改。请从消息中重新打开链接，再点页面上的按钮。"
        ),
    },
}
BOTH = ("zh-CN", "en")  # a refusal to someone we cannot identify speaks both

STATUS = {
    "unknown_person": 403,
    "not_a_responder": 403,
    "not_your_building": 403,
    "no_alert": 404,
    "claimed_by_other": 409,
    "resolved": 409,
    "not_claimed_by_you": 409,
}


class CrossSite(Exception):
    """A POST that did not come from the page's own form."""

    def __init__(self, language: str | None) -> None:
        super().__init__("cross-site form post")
        self.language = language


def form_token(token: str) -> str:
    """The hidden form field for the page at /m/<token> (see web/forms.py)."""
    return forms.form_token("phone-form", token)


def _link(token: str) -> tuple[str, int]:
    rt = get_runtime()
    return read_link_token(
        current_app.config["LINK_KEY"], token, rt.clock.now(), current_app.config["LINK_MAX_AGE"]
    )


def _check_form(token: str, view_language: str | None) -> None:
    if not forms.form_ok("phone-form", token):
        raise CrossSite(view_language)


def _language_of(person_id: str) -> str | None:
    with get_runtime().sessions() as s:
        person = s.get(Person, person_id)
        return person.language if person else None


@bp.get("/<token>")
def page(token: str) -> tuple[str, int]:
    person_id, alert_id = _link(token)
    with get_runtime().sessions() as s:
        v = view(s, person_id, alert_id)
    return _page(token, v), 200


@bp.post("/<token>/claim")
def claim(token: str) -> Response:
    person_id, alert_id = _link(token)
    _check_form(token, _language_of(person_id))
    rt = get_runtime()
    with rt.sessions.begin() as s:
        claim_by_link(
            s, person_id, alert_id, rt.clock.now(), timedelta(seconds=rt.settings.claim_timeout_s)
        )
    return redirect(url_for("phone.page", token=token), 303)


@bp.post("/<token>/resolve")
def resolve(token: str) -> Response | tuple[str, int]:
    person_id, alert_id = _link(token)
    _check_form(token, _language_of(person_id))
    rt = get_runtime()
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "")
    try:
        with rt.sessions.begin() as s:
            resolve_by_link(s, person_id, alert_id, outcome, note, rt.clock.now())
    except Invalid as e:
        with rt.sessions() as s:
            v = view(s, person_id, alert_id)
        t = LABELS[v.language]
        error = t["error_outcome"] if e.field == "outcome" else t["error_note"].format(n=NOTE_MAX)
        return _page(token, v, error=error, outcome=outcome, note=note), 400
    return redirect(url_for("phone.page", token=token), 303)


def _page(token: str, v: AlertView, **form: str) -> str:
    t = LABELS[v.language]
    tz = ZoneInfo(v.timezone)
    now = get_runtime().clock.now()

    def at(when: datetime | None) -> str:
        return when.astimezone(tz).strftime("%m-%d %H:%M") if when else "-"

    minutes = max(0, int((now - v.since).total_seconds() // 60))
    ago = (
        t["min_ago"].format(n=minutes)
        if minutes < 60
        else t["h_ago"].format(h=minutes // 60, m=minutes % 60)
    )
    if v.status == "resolved":
        outcome = t.get(f"outcome_{v.outcome}", v.outcome or "-")
        status = t["status_resolved"].format(
            name=v.resolved_by_name or "-", at=at(v.resolved_at), outcome=outcome
        )
    elif v.status == "claimed":
        key = "status_mine" if v.mine else "status_other"
        status = t[key].format(name=v.claimed_by_name or "-", at=at(v.claimed_at))
    else:
        status = t["status_open"]
    with force_locale(catalogue_locale(v.language)):
        detail = said(v.detail_message, v.detail, at)
        note = said(v.note_message, v.note or "", at)
    return render_template(
        "phone/alert.html",
        lang=v.language,
        t=t,
        v=v,
        detail=detail,
        resolution_note=note,
        since=f"{at(v.since)} ({ago})",
        status=status,
        outcomes=[(o, t[f"outcome_{o}"]) for o in OUTCOMES],
        note_max=NOTE_MAX,
        note_label=t["note"].format(n=NOTE_MAX),
        form_token=form_token(token),
        signed_in_as=t["signed_in_as"].format(name=v.person_name),
        token=token,
        error=form.get("error"),
        chosen=form.get("outcome"),
        note=form.get("note", ""),
    )


def _refusal(
    key: str,
    languages: tuple[str, ...],
    status: int,
    body_key: str | None = None,
    back: str | None = None,
    **fill: Any,
) -> tuple[str, int]:
    texts = [
        {
            "lang": lang,
            "title": LABELS[lang][f"{key}_title"].format(**fill),
            "body": LABELS[lang][f"{body_key or key}_body"].format(**fill),
        }
        for lang in languages
    ]
    return render_template(
        "phone/refused.html", lang=languages[0], t=LABELS[languages[0]], texts=texts, back=back
    ), status


def _languages(language: str | None) -> tuple[str, ...]:
    return (language,) if language in LABELS else BOTH


@bp.errorhandler(LinkExpired)
def expired(e: LinkExpired) -> tuple[str, int]:
    hours = int(current_app.config["LINK_MAX_AGE"].total_seconds() // 3600)
    return _refusal("expired", _languages(_language_of(e.person_id)), 410, hours=hours)


@bp.errorhandler(LinkTampered)
def tampered(e: LinkTampered) -> tuple[str, int]:
    return _refusal("tampered", BOTH, 403)


@bp.errorhandler(CrossSite)
def cross_site(e: CrossSite) -> tuple[str, int]:
    return _refusal("csrf", _languages(e.language), 403, back=_back())


@bp.errorhandler(Refused)
def refused(e: Refused) -> tuple[str, int]:
    no_building = e.reason == "not_your_building" and e.building is None
    return _refusal(
        e.reason,
        _languages(e.language),
        STATUS[e.reason],
        body_key="no_building" if no_building else None,
        back=_back() if STATUS[e.reason] == 409 else None,
        other=e.other or "-",
        building=e.building or "-",
    )


def _back() -> str | None:
    token = (request.view_args or {}).get("token")
    return url_for("phone.page", token=token) if token else None


@bp.after_request
def private(response: Response) -> Response:
    """The page holds a person's name and a live link: never cache it, never leak the URL
    in a Referer, never frame it, load nothing from elsewhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response
