"""The guard on the link pages' forms (phone page, family pages). Those pages need no login:
the signed link is the credential. So a form carries a hidden field, an HMAC of the page's
own link token under the app's key, which a page on another site cannot read and which fits
no other link; and a POST the browser marks as coming from another site is refused."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app, request


def form_token(purpose: str, token: str) -> str:
    key = current_app.config["LINK_KEY"].encode()
    return hmac.new(key, f"{purpose}\x00{token}".encode(), hashlib.sha256).hexdigest()


def form_ok(purpose: str, token: str) -> bool:
    sent = request.form.get("form_token", "")
    cross = request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site")
    return not cross and hmac.compare_digest(sent, form_token(purpose, token))
