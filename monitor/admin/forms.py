"""What every admin service shares: the error that tells a person which field of a form to
fix and how (`AdminError`, its problems collected with `problem`), the checks of an id and of
a plain text field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from monitor.messages import N_, english

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TEXT_MAX = {"name": 200, "building": 64, "unit": 64, "phone": 64, "contact": 2000, "notes": 2000}

T = TypeVar("T")

Problems = dict[str, tuple[str, Mapping[str, Any]]]


class AdminError(ValueError):
    """A change that cannot be made as asked. `problems` maps a form field (or "" for the
    whole form) to (message id, parameters): English text with %(name)s placeholders that
    the page translates, so the person sees exactly what to fix and where."""

    def __init__(self, problems: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        self.problems = dict(problems)
        super().__init__(
            "; ".join(f"{k or 'form'}: {english(m)}" for k, m in self.problems.items())
        )

    @classmethod
    def one(cls, field: str, msgid: str, **params: Any) -> AdminError:
        return cls({field: (msgid, params)})


def problem(problems: Problems, field_name: str, msgid: str, **params: Any) -> None:
    problems.setdefault(field_name, (msgid, params))


def text_field(
    form: Mapping[str, str], key: str, problems: Problems, *, required: bool, label: str
) -> str:
    value = (form.get(key) or "").strip()
    if required and not value:
        problem(problems, key, N_("%(field)s is required."), field=label)
    elif len(value) > TEXT_MAX.get(key, 200):
        problem(
            problems,
            key,
            N_("%(field)s has at most %(n)s characters."),
            field=label,
            n=TEXT_MAX.get(key, 200),
        )
    return value
