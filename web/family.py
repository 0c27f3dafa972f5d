"""The family pages (issue 3, point 5): the invitation a staff member sends to a relative,
`/family/invite/<token>` (who it is about, exactly what will be shared, a form to choose
where messages go and an optional daily summary time, then a confirmation), and the stop
link every family message carries, `/family/stop/<token>`.

Same style as the phone page: plain HTML, inline CSS, 360 px, zh-CN or en (the invitation
starts in Chinese with a switch to English; the stop page speaks the person's language).
Every rule lives in `alerts.family`; this module reads the request, calls it and renders the
answer or a refusal with the right status code. Forms carry an HMAC of the URL's token
(`web.forms`), as on the phone page; a POST without it is refused."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_babel import force_locale, gettext, pgettext
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
from monitor.messages import catalogue_locale
from monitor.models import Resident
from web import forms
from web.helpers import get_runtime

bp = Blueprint("family", __name__, url_prefix="/family")

# The pages' words are message ids of the catalogue (web/translations), said in the page's
# language (force_locale). Where the phone page says the same English otherwise in Chinese,
# the family pages' have the context "family page".
BOTH = ("zh-CN", "en")
# Each language by its own name, the same on every page (so not in the catalogue).
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}


def _labels() -> dict[str, str]:
    """The invitation's and the stop page's fixed words (their templates' `t`), in the current
    locale."""
    return {
        "what_title": gettext("What you agree to"),
        "form_title": gettext("Your details"),
        "name": gettext("Your name"),
        "language": gettext("Language of the messages"),
        "notify_help": gettext(
            "For example ntfy://ntfy.sh/your-topic (the ntfy app), "
            "mailto://user:password@example.com (email), "
            "tgram://bot-token/chat-id (Telegram)."
        ),
        "digest_at": gettext("Daily summary at (optional, e.g. 20:00; leave empty for none)"),
        "agree": gettext("I agree: send me these messages"),
        "stop": gettext("Stop all messages"),
    }


def _refusals() -> dict[str, tuple[str, str]]:
    """Each refusal's (title, body) by reason, in the current locale."""
    return {
        "expired": (
            gettext("This invitation has expired"),
            gettext("Please ask the community staff for a new one."),
        ),
        "used": (
            gettext("This invitation has already been used"),
            gettext(
                "If that was not you, or you want to change your details, please ask the "
                "community staff for a new one."
            ),
        ),
        "gone": (
            gettext("This invitation is no longer valid"),
            gettext("Please ask the community staff."),
        ),
        "tampered": (
            pgettext("family page", "This link is not valid"),
            gettext(
                "It may have been cut off or changed when it was copied. Open it again from the "
                "message, or ask the community staff."
            ),
        ),
        "csrf": (
            gettext("Please use the button on the page"),
            gettext(
                "This request did not come from our page, so nothing was changed. Open the link "
                "again and use the button there."
            ),
        ),
    }


# The purposes of the pages' form tokens (web.forms).
INVITE_FORM = "family-invite"
STOP_FORM = "family-stop"


def _key() -> str:
    key: str = current_app.config["LINK_KEY"]
    return key


def _page_language() -> str:
    lang = request.values.get("lang") or request.form.get("language") or "zh-CN"
    return lang if lang in LANGUAGES else "zh-CN"


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
    forms.check(INVITE_FORM, token, lang)
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
    with force_locale(catalogue_locale(person_lang)):
        title = gettext("Thank you, %(person)s", person=person_name)
        body = gettext(
            "You will now receive messages about %(name)s. Each message ends with a link to "
            "stop them.",
            name=name,
        )
        summary = (
            gettext("A daily summary will arrive at %(at)s.", at=digest)
            if digest
            else gettext("You chose no daily summary.")
        )
    return render_template(
        "family/done.html", lang=person_lang, title=title, body=body, digest=summary
    ), 200


def _form_error(lang: str, e: InvalidForm) -> str:
    with force_locale(catalogue_locale(lang)):
        if e.field == "notify":
            if e.line is not None:
                return gettext(
                    "Line %(line)s is not an address we can send to: %(value)s. Please check it "
                    "against the examples.",
                    line=e.line,
                    value=e.value,
                )
            if e.value:  # how many were given, when too many
                return gettext("Please give at most %(n)s addresses.", n=URLS_MAX)
            return gettext("Please give at least one address to send messages to.")
        if e.field == "digest_at":
            return gettext("“%(value)s” is not a time like 20:00.", value=e.value)
        if e.field == "language":
            return gettext("Please choose a language.")
        return gettext("Please give your name.")


def _invite_page(
    token: str, name: str, lang: str, error: str | None = None, form: dict[str, str] | None = None
) -> str:
    form = form or {}
    other = "en" if lang == "zh-CN" else "zh-CN"
    with force_locale(catalogue_locale(lang)):
        # The switch to the other language names it in its own words.
        t = _labels() | {"switch": LANGUAGE_NAMES[other]}
        title = gettext("Messages about %(name)s", name=name)
        intro = gettext(
            "The community staff invite you to receive messages about %(name)s. "
            "Please read what will be shared before you agree.",
            name=name,
        )
        version = gettext("Text version %(version)s", version=CONSENT_VERSION)
        notify_label = gettext(
            "Where to send messages (one address per line, up to %(n)s)", n=URLS_MAX
        )
    return render_template(
        "family/invite.html",
        lang=lang,
        t=t,
        title=title,
        intro=intro,
        consent=consent_text(lang).split("\n"),
        version=version,
        notify_label=notify_label,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        chosen=form.get("language") or lang,
        switch_lang=other,
        token=token,
        form_token=forms.form_token(INVITE_FORM, token),
        error=error,
        form=form,
    )


@bp.get("/stop/<token>")
def stop_page(token: str) -> tuple[str, int]:
    with get_runtime().sessions() as s:
        person = read_opt_out(s, token, key=_key())
        lang, who, stopped = _lang(person.language), person.name, person.opted_out_at
        name = _resident_name(s, person.resident_id)
    if stopped is not None:
        return _stopped(lang, name), 200
    with force_locale(catalogue_locale(lang)):
        t = _labels()
        title = gettext("Stop all messages about %(name)s", name=name)
        body = gettext(
            "%(person)s, after you confirm you will receive no more messages about %(name)s: no "
            "alerts and no daily summary.",
            person=who,
            name=name,
        )
    return render_template(
        "family/stop.html",
        lang=lang,
        t=t,
        title=title,
        body=body,
        token=token,
        form_token=forms.form_token(STOP_FORM, token),
    ), 200


@bp.post("/stop/<token>")
def stop(token: str) -> tuple[str, int]:
    rt = get_runtime()
    with rt.sessions() as s:
        lang = _lang(read_opt_out(s, token, key=_key()).language)
    forms.check(STOP_FORM, token, lang)
    with rt.sessions.begin() as s:
        person = opt_out(s, token, rt.clock.now(), key=_key())
        name = _resident_name(s, person.resident_id)
    return _stopped(lang, name), 200


def _stopped(lang: str, name: str) -> str:
    with force_locale(catalogue_locale(lang)):
        title = gettext("Messages stopped")
        body = gettext(
            "You will receive no more messages about %(name)s. To start again, please ask the "
            "community staff.",
            name=name,
        )
    return render_template("family/done.html", lang=lang, title=title, body=body, digest=None)


def _resident_name(session: Session, resident_id: str | None) -> str:
    resident = session.get(Resident, resident_id) if resident_id else None
    return resident.name if resident else "-"


def _lang(language: str | None) -> str:
    return language if language in LANGUAGES else "zh-CN"


def _refusal(key: str, languages: tuple[str, ...], status: int) -> tuple[str, int]:
    texts = []
    for lang in languages:
        with force_locale(catalogue_locale(lang)):
            title, body = _refusals()[key]
        texts.append({"lang": lang, "title": title, "body": body})
    return render_template("phone/refused.html", lang=languages[0], texts=texts, back=None), status


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


@bp.errorhandler(forms.CrossSite)
def cross_site(e: forms.CrossSite) -> tuple[str, int]:
    return _refusal("csrf", (e.language,) if e.language in LANGUAGES else BOTH, 403)


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
