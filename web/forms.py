"""The guard on the link pages' forms (phone page, family pages). Those pages need no login:
the signed link is the credential. So a form carries a hidden field, an HMAC of the page's
own link token under the app's key, which a page on another site cannot read and which fits
no other link; and a POST the browser marks as coming from another site is refused.

A page puts `form_token(purpose, token)` in its form and calls `check(purpose, token,
language)` before acting on a POST; its blueprint answers `CrossSite` with its own refusal.
The purpose (``phone-form``, ``family-invite``, ``family-stop``) keeps one page's field from
opening another's form."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app, request


class CrossSite(Exception):
    """A POST that did not come from the page's own form. `language` is the person's when
    the page knows it, for the refusal."""

    def __init__(self, language: str | None) -> None:
        super().__init__("cross-site form post")
        self.language = language


def form_token(purpose: str, token: str) -> str:
    key = current_app.config["LINK_KEY"].encode()
    return hmac.new(key, f"{purpose}\x00{token}".encode(), hashlib.sha256).hexdigest()


def check(purpose: str, token: str, language: str | None) -> None:
    """Raise CrossSite unless this POST carries the form token of the page at `token` and
    does not come from another site."""
    sent = request.form.get("form_token", "")
    cross = request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site")
    if cross or not hmac.compare_digest(sent, form_token(purpose, token)):
        raise CrossSite(language)
