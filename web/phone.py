"""The volunteer phone page, reached from the link in a notification: `/m/<token>`.

Shows who, where, what and since when, the alert's status and who claimed it; a big
"I'm going" button, then (for the claimer) a resolve form with an outcome and a short note.
Plain HTML with a little inline CSS, made for a 360-px-wide screen, in the person's language
(zh-CN or en). Who may do what is decided by `alerts.tokens`; this module only reads the
request, calls it, and renders the answer or a friendly refusal with the right status code.

Cross-site POSTs: the link token is in the URL, so every form also carries a hidden field
holding an HMAC of that token under the app's key (`web.forms`); a POST without the right
value, or one a browser marks as coming from another site (`Sec-Fetch-Site`), is refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import force_locale, gettext, pgettext
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
from web.helpers import ALERT_OUTCOME_LABELS, get_runtime, said

bp = Blueprint("phone", __name__, url_prefix="/m")

# The page's words are message ids of the catalogue (web/translations), said in the person's
# language (force_locale). Where the dashboard says the same English otherwise in Chinese (its
# "Who" is who acted; here it is the resident), the phone page's have the context "phone page".
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


def _labels() -> dict[str, str]:
    """The page's fixed words (its templates' `t`), in the current locale."""
    return {
        "who": pgettext("phone page", "Who"),
        "where": gettext("Where"),
        "since": gettext("Since"),
        "status": gettext("Status"),
        "details": pgettext("phone page", "Details"),
        "going": gettext("I'm going"),
        "going_hint": gettext("Tap to tell everyone you are on your way. Staff will not be paged."),
        "resolve_title": gettext("What did you find?"),
        "resolve": gettext("Done: record this"),
        "back": gettext("Back to the alert"),
    }


def _refusals() -> dict[str, tuple[str, str]]:
    """Each refusal's (title, body) by reason, in the current locale; %(name)s still to fill."""
    return {
        "expired": (
            gettext("This link has expired"),
            gettext(
                "This link has expired, ask staff for a new one. "
                "Links in alert messages work for %(hours)s hours."
            ),
        ),
        "tampered": (
            gettext("This link is not valid"),
            gettext(
                "It may have been cut off or changed when it was copied. Open it again from the "
                "message, or ask staff for a new one."
            ),
        ),
        "unknown_person": (
            gettext("This link is not for anyone on our list"),
            gettext("Your name is no longer on the list. Please ask staff."),
        ),
        "not_a_responder": (
            gettext("This page is for volunteers and staff"),
            gettext(
                "Volunteers and community staff are looking after this alert. If you are "
                "worried, call the community staff."
            ),
        ),
        "not_your_building": (
            gettext("Not your building"),
            gettext("This alert is for building %(building)s, which you do not cover."),
        ),
        "no_building": (
            gettext("Not your building"),
            gettext("This alert is not about a building you cover."),
        ),
        "no_alert": (
            gettext("Alert not found"),
            gettext("This alert no longer exists. Please ask staff."),
        ),
        "claimed_by_other": (
            gettext("%(other)s is going"),
            gettext(
                "%(other)s said they are going to this alert first. Thank you, there is nothing "
                "more for you to do."
            ),
        ),
        "resolved": (
            gettext("Already resolved"),
            gettext("%(other)s has already resolved this alert. Thank you."),
        ),
        "not_claimed_by_you": (
            gettext("Tap “I'm going” first"),
            gettext("Only the person who is going can record what they found."),
        ),
        "csrf": (
            gettext("Please use the button on the alert page"),
            gettext(
                "This request did not come from the alert page, so nothing was changed. Open the "
                "link from the message again and tap the button there."
            ),
        ),
    }


# The purpose of this page's form token (web.forms).
FORM = "phone-form"


def _link(token: str) -> tuple[str, int]:
    rt = get_runtime()
    return read_link_token(
        current_app.config["LINK_KEY"], token, rt.clock.now(), current_app.config["LINK_MAX_AGE"]
    )


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
    forms.check(FORM, token, _language_of(person_id))
    rt = get_runtime()
    with rt.sessions.begin() as s:
        claim_by_link(
            s, person_id, alert_id, rt.clock.now(), timedelta(seconds=rt.settings.claim_timeout_s)
        )
    return redirect(url_for("phone.page", token=token), 303)


@bp.post("/<token>/resolve")
def resolve(token: str) -> Response | tuple[str, int]:
    person_id, alert_id = _link(token)
    forms.check(FORM, token, _language_of(person_id))
    rt = get_runtime()
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "")
    try:
        with rt.sessions.begin() as s:
            resolve_by_link(s, person_id, alert_id, outcome, note, rt.clock.now())
    except Invalid as e:
        with rt.sessions() as s:
            v = view(s, person_id, alert_id)
        with force_locale(catalogue_locale(v.language)):
            error = (
                gettext("Please choose what you found.")
                if e.field == "outcome"
                else pgettext(
                    "phone page", "The note is too long (at most %(n)s characters).", n=NOTE_MAX
                )
            )
        return _page(token, v, error=error, outcome=outcome, note=note), 400
    return redirect(url_for("phone.page", token=token), 303)


def _page(token: str, v: AlertView, **form: str) -> str:
    tz = ZoneInfo(v.timezone)
    now = get_runtime().clock.now()

    def at(when: datetime | None) -> str:
        return when.astimezone(tz).strftime("%m-%d %H:%M") if when else "-"

    minutes = max(0, int((now - v.since).total_seconds() // 60))
    with force_locale(catalogue_locale(v.language)):
        t = _labels()
        outcomes = {o: str(ALERT_OUTCOME_LABELS[o]) for o in OUTCOMES}
        ago = (
            gettext("%(n)s min ago", n=minutes)
            if minutes < 60
            else gettext("%(h)s h %(m)s min ago", h=minutes // 60, m=minutes % 60)
        )
        if v.status == "resolved":
            status = pgettext(
                "phone page",
                "Resolved by %(name)s at %(at)s: %(outcome)s.",
                name=v.resolved_by_name or "-",
                at=at(v.resolved_at),
                outcome=outcomes.get(v.outcome or "", v.outcome or "-"),
            )
        elif v.status == "claimed" and v.mine:
            status = gettext("You are going (since %(at)s).", at=at(v.claimed_at))
        elif v.status == "claimed":
            status = pgettext(
                "phone page",
                "%(name)s is going (since %(at)s).",
                name=v.claimed_by_name or "-",
                at=at(v.claimed_at),
            )
        else:
            status = pgettext("phone page", "Nobody has said they are going yet.")
        detail = said(v.detail_message, v.detail, at)
        note = said(v.note_message, v.note or "", at)
        note_label = pgettext("phone page", "Note (optional, up to %(n)s characters)", n=NOTE_MAX)
        signed_in_as = gettext("This link is for %(name)s.", name=v.person_name)
    return render_template(
        "phone/alert.html",
        lang=v.language,
        t=t,
        v=v,
        detail=detail,
        resolution_note=note,
        since=f"{at(v.since)} ({ago})",
        status=status,
        outcomes=[(o, outcomes[o]) for o in OUTCOMES],
        note_max=NOTE_MAX,
        note_label=note_label,
        form_token=forms.form_token(FORM, token),
        signed_in_as=signed_in_as,
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
    texts = []
    for lang in languages:
        with force_locale(catalogue_locale(lang)):
            said_here = _refusals()
            title, body = said_here[key][0], said_here[body_key or key][1]
        texts.append({"lang": lang, "title": title % fill, "body": body % fill})
    with force_locale(catalogue_locale(languages[0])):
        t = _labels()
    return render_template(
        "phone/refused.html", lang=languages[0], t=t, texts=texts, back=back
    ), status


def _languages(language: str | None) -> tuple[str, ...]:
    return (language,) if language in BOTH else BOTH


@bp.errorhandler(LinkExpired)
def expired(e: LinkExpired) -> tuple[str, int]:
    hours = int(current_app.config["LINK_MAX_AGE"].total_seconds() // 3600)
    return _refusal("expired", _languages(_language_of(e.person_id)), 410, hours=hours)


@bp.errorhandler(LinkTampered)
def tampered(e: LinkTampered) -> tuple[str, int]:
    return _refusal("tampered", BOTH, 403)


@bp.errorhandler(forms.CrossSite)
def cross_site(e: forms.CrossSite) -> tuple[str, int]:
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
