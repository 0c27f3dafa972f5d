"""Messages for people: written in English where they arise, said in the reader's language.

The domain does not know who reads: the CLI and the logs print English, a page or a
notification uses the reader's language. So a message is kept as its English message id
(marked with `N_` for the catalogue, extracted by `make translations`) and its parameters,
and whoever shows it translates it: the web layer (web/admin/blueprint.py for AdminError, the
`problem` filter of web/imports.py for Problem, `said` in web/app.py for an alert's detail
and note and a dead letter's reason from sensors/) and alerts/messages.py for
notifications, through `translator`.

A parameter whose name ends in `_at` is an instant, kept as ISO 8601 text (`instant`):
English text shows it in UTC, a page or a notification in the reader's local time (the
community's zone on the dashboard, the resident's on the phone page). A parameter that is
itself a Message is said in the same language.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

# (message id with %(name)s placeholders, parameters)
Message = tuple[str, Mapping[str, Any]]
Translate = Callable[..., str]  # gettext(msgid, **params)
Local = Callable[[datetime], str]  # an instant as the reader's clock shows it

# The catalogue `make translations` compiles (Flask-Babel reads it for the pages).
TRANSLATIONS = Path(__file__).resolve().parents[1] / "web" / "translations"

# Text shown as it is, in any language: a path in the file ("residents[2].routines[0].end").
VERBATIM = "%(text)s"


def N_(msgid: str) -> str:
    """Marks an English message for the translation catalogue (extract with keyword N_);
    the web layer translates it with its parameters when it shows it."""
    return msgid


def instant(moment: datetime) -> str:
    """An `_at` parameter's value."""
    if moment.tzinfo is None:
        raise ValueError("an instant needs its time zone (naive datetime given)")
    return moment.isoformat()


def english(message: Message) -> str:
    return say(_english, message, _utc)


def say(gettext: Translate, message: Message, local: Local) -> str:
    """`message` through `gettext`, its `_at` parameters shown by `local`. Raises
    KeyError, ValueError or TypeError if a stored message lacks what its id needs."""
    msgid, params = message
    if msgid == VERBATIM:
        return str(params["text"])
    if not params:
        return gettext(msgid)
    shown = {k: _param(gettext, local, k, v) for k, v in params.items()}
    return gettext(msgid, **shown)


def say_or(gettext: Translate, message: Message | None, fallback: str, local: Local) -> str:
    """`message` said as `say` does; `fallback` (its stored English) when there is none
    (rows from before messages were kept) or when a stored one cannot be said."""
    if message is None:
        return fallback
    try:
        return say(gettext, message, local)
    except (KeyError, ValueError, TypeError):
        return fallback


def catalogue_locale(language: str) -> str:
    """The catalogue for a person's language as stored (zh-CN, en): English for "en…",
    zh-CN for any other (the only catalogue there is)."""
    return "en" if language.lower().startswith("en") else "zh_CN"


def translator(language: str) -> Translate:
    """gettext of the web's compiled catalogue for a person's language, for what is said
    outside a request (notifications); English text if the catalogue is missing."""
    return _catalogue(catalogue_locale(language))


@cache
def _catalogue(locale: str) -> Translate:
    from babel.support import Translations

    found = Translations.load(str(TRANSLATIONS), [locale])

    def gettext(msgid: str, **params: Any) -> str:
        text = found.gettext(msgid)
        return text % params if params else text

    return gettext


def dump(message: Message) -> str:
    return json.dumps([message[0], dict(message[1])], ensure_ascii=False)


def load(text: str | None) -> Message | None:
    """A stored message; None for none (or for a stored text that is not one)."""
    if not text:
        return None
    try:
        msgid, params = json.loads(text)
    except (ValueError, TypeError):
        return None
    return (msgid, params) if isinstance(msgid, str) and isinstance(params, dict) else None


class MessageError(ValueError):
    """An error whose text is English (logs, the CLI) and whose `what` is the same as a
    Message, for a page to say in its reader's language."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.what: Message = (msgid, params)
        super().__init__(english(self.what))


def about(where: str, what: Message) -> Message:
    """`what`, said to be about `where` (a path in a file, a topic, a device), which is
    shown as written."""
    return _placed((VERBATIM, {"text": where}), what)


class Problem(str):
    """One problem with a file someone gave us, as the English text the CLI prints and the
    logs keep (`residents[2].routines[0].end: "25:00" is not a time`), carrying `where`
    (the place: a path in the file, a row and column of a sheet; None for the file as a
    whole) and `what` (the problem) as Messages, so a page can say it in its reader's
    language. A str, so everything that handles problems as text keeps doing so."""

    where: Message | None
    what: Message

    def __new__(cls, where: Message | None, what: Message) -> Problem:
        self = super().__new__(cls, english(_placed(where, what)))
        self.where, self.what = where, what
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # copy and pickle rebuild a Problem from its parts, not from its text.
        return (Problem, (self.where, self.what))

    @classmethod
    def at(cls, path: str, msgid: str, **params: Any) -> Problem:
        """A problem at `path` in the file's shape."""
        return cls((VERBATIM, {"text": path}), (msgid, params))

    def message(self) -> Message:
        """The whole problem, place and all, as one Message."""
        return _placed(self.where, self.what)

    def translated(self, gettext: Translate) -> str:
        return say(gettext, self.message(), _utc)


def _placed(where: Message | None, what: Message) -> Message:
    if where is None:
        return what
    return N_("%(where)s: %(what)s"), {"where": where, "what": what}


def _param(gettext: Translate, local: Local, name: str, value: Any) -> Any:
    if _is_message(value):
        return say(gettext, (value[0], value[1]), local)
    if name.endswith("_at"):
        return local(datetime.fromisoformat(value))
    return value


def _is_message(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], Mapping)
    )


def _english(msgid: str, **params: Any) -> str:
    return msgid % params if params else msgid


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
