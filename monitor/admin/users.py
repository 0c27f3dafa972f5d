"""Web users: creating them, checking passwords (argon2id via argon2-cffi) and API tokens
(random, shown once, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import ROLES, Person, User

_hasher = PasswordHasher()
MIN_PASSWORD = 8
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
