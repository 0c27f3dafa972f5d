"""Web users: creating them, checking passwords (argon2id via argon2-cffi) and API tokens
(random, shown once, stored as SHA-256); and what admins do to them on the users page (add
one from the form, deactivate or reactivate, reset a password, a new API token), each change
with its audit line."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.admin.forms import AdminError, Problems, problem
from monitor.audit import record
from monitor.messages import N_
from monitor.models import ROLES, Person, User

_hasher = PasswordHasher()
MIN_PASSWORD = 8
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# Checked against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("curtainwatch-no-such-user")


class UserError(ValueError):
    """A user that cannot be made as asked; the message says why, for the person asking."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    now: datetime,
    *,
    person_id: str | None = None,
    display_name: str = "",
    language: str | None = None,
    hashed: str | None = None,
) -> User:
    """A new user. `hashed` is an already hashed password (bulk loads and tests, where
    hashing the same password again costs 0.2 s a time)."""
    username = username.strip()
    if not username or len(username) > 64:
        raise UserError("a username is 1 to 64 characters")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if hashed is None and len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if session.scalar(select(func.count()).where(User.username == username)):
        raise UserError(f"there is already a user {username!r}")
    person = session.get(Person, person_id) if person_id else None
    if person_id and person is None:
        raise UserError(f"there is no person {person_id!r} in the community file")
    if role in ("volunteer", "family") and person is None:
        raise UserError(f"a {role} user must be linked to their person (--person)")
    if person is not None and role in ("volunteer", "family") and person.role != role:
        raise UserError(f"person {person_id!r} is a {person.role}, not a {role}")
    user = User(
        username=username,
        display_name=display_name or (person.name if person else username),
        password_hash=hashed or hash_password(password),
        role=role,
        person_id=person_id,
        language=language or (person.language if person else None),
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def check_password(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, else None."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def new_api_token(user: User) -> str:
    """Give `user` a new API token (replacing any old one); returns it, the only time it is
    seen in clear."""
    token = "cw_" + secrets.token_urlsafe(32)
    user.api_token_hash = _token_hash(token)
    return token


def user_for_token(session: Session, token: str) -> User | None:
    if not token.startswith("cw_"):
        return None
    user = session.scalar(select(User).where(User.api_token_hash == _token_hash(token)))
    return user if user is not None and user.active else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- the admin page --------------------------------------------------------------------


def _password(password: str, problems: Problems, key: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        problem(problems, key, N_("A password needs at least %(n)s characters."), n=MIN_PASSWORD)
    elif len(password) > 200:
        problem(problems, key, N_("A password has at most %(n)s characters."), n=200)


def add_user(session: Session, form: Mapping[str, str], actor: str, now: datetime) -> User:
    """A new web user from the admin form. Volunteers and family must be linked to their
    person (that decides what they may see)."""
    problems: Problems = {}
    username = (form.get("username") or "").strip()
    if not USERNAME_PATTERN.match(username):
        problem(
            problems,
            "username",
            N_(
                "A username is 1 to 64 letters, digits, dots, dashes, underscores or @, "
                "starting with a letter or digit."
            ),
        )
    elif session.scalar(select(func.count()).where(User.username == username)):
        problem(problems, "username", N_("There is already a user %(name)s."), name=username)
    role = (form.get("role") or "").strip()
    if role not in ROLES:
        problem(problems, "role", N_("Choose a role: %(roles)s."), roles=", ".join(ROLES))
    person_id = (form.get("person_id") or "").strip() or None
    person = session.get(Person, person_id) if person_id else None
    if person_id and person is None:
        problem(problems, "person_id", N_("There is no person %(id)s."), id=person_id)
    elif role in ("volunteer", "family") and person is None:
        problem(
            problems,
            "person_id",
            N_("A volunteer or family user must be linked to their person."),
        )
    elif person is not None and role in ("volunteer", "family") and person.role != role:
        problem(
            problems,
            "person_id",
            N_("%(name)s is a %(their)s, not a %(role)s."),
            name=person.name,
            their=person.role,
            role=role,
        )
    display = (form.get("display_name") or "").strip()
    if len(display) > 200:
        problem(
            problems,
            "display_name",
            N_("%(field)s has at most %(n)s characters."),
            field=N_("Name"),
            n=200,
        )
    password = form.get("password") or ""
    _password(password, problems)
    if problems:
        raise AdminError(problems)
    try:
        user = create_user(
            session, username, password, role, now, person_id=person_id, display_name=display
        )
    except UserError as e:  # a rule of create_user the checks above did not foresee
        raise AdminError.one("", "%(reason)s", reason=str(e)) from None
    record(
        session,
        actor,
        "user.add",
        username,
        f"role {role}" + (f", person {person_id}" if person_id else ""),
        now,
    )
    return user


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AdminError.one("", N_("There is no such user."))
    return user


def set_user_active(
    session: Session, user_id: int, active: bool, actor: str, now: datetime, *, own_id: int
) -> User:
    """Deactivate (they are signed out at their next request; their API token stops working)
    or reactivate a user. An admin cannot deactivate themselves, so there is always one."""
    user = _user(session, user_id)
    if not active and user.id == own_id:
        raise AdminError.one("", N_("You cannot deactivate yourself."))
    if user.active != active:
        user.active = active
        record(
            session, actor, "user.activate" if active else "user.deactivate", user.username, "", now
        )
    session.flush()
    return user


def reset_password(
    session: Session, user_id: int, password: str, actor: str, now: datetime
) -> User:
    problems: Problems = {}
    _password(password, problems)
    if problems:
        raise AdminError(problems)
    user = _user(session, user_id)
    user.password_hash = hash_password(password)
    record(session, actor, "user.password", user.username, "password reset", now)
    session.flush()
    return user


def make_api_token(session: Session, user_id: int, actor: str, now: datetime) -> tuple[User, str]:
    """A new API token for the user (the old one stops working); shown once, stored hashed."""
    user = _user(session, user_id)
    if not user.active:
        raise AdminError.one("", N_("%(name)s is deactivated."), name=user.username)
    token = new_api_token(user)
    record(
        session,
        actor,
        "user.token",
        user.username,
        "new API token (the old one stops working)",
        now,
    )
    session.flush()
    return user, token
