"""What the suite needs from outside Python, where it is looked for, and the missing-dependency
rule: skip on a developer machine, fail under CI.

The lookups live here and nowhere else: the fixtures (``tests/conftest.py``,
``support.browser``) and ``make test``'s preflight (``tests/support/preflight.py``) call the
same functions, so the preflight cannot pass a machine on which the fixtures would skip.

- :data:`MOSQUITTO`: the broker binary (:func:`find_mosquitto`), both passes.
- :data:`POSTGRESQL`: ``initdb`` and ``postgres`` (:func:`find_postgres_bindir`), the
  PostgreSQL pass only.
- :data:`CHROMIUM_BROWSER`: Debian's Chromium at ``/usr/bin/chromium``, both passes.

Every fixture that needs one of them (or ../shared/data, the shared/ folder beside the
checkout) calls :func:`require` (or :meth:`External.require`), so a CI machine that lacks a
dependency fails loudly instead of going green with half the suite skipped.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

__all__ = [
    "CHROMIUM",
    "CHROMIUM_BROWSER",
    "EXTERNALS",
    "MOSQUITTO",
    "POSTGRESQL",
    "External",
    "find_chromium",
    "find_mosquitto",
    "find_postgres_bindir",
    "in_ci",
    "missing",
    "require",
]

T = TypeVar("T")

MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"
CHROMIUM = Path("/usr/bin/chromium")


def in_ci() -> bool:
    """True when the environment variable ``CI`` is ``true`` (as set by CI runners)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require(condition: object, what: str, how: str) -> None:
    """Skip the current test unless ``condition`` holds; under ``CI=true``, fail instead.

    ``what`` says what is missing ("mosquitto not installed"), ``how`` how to get it
    ("apt-get install mosquitto"). Call it from a fixture or a test.
    """
    if condition:
        return
    message = f"{what}: {how}"
    if in_ci():
        pytest.fail(f"{message} (CI=true, so a missing dependency is a failure)", pytrace=False)
    pytest.skip(message)


# --- the lookups ------------------------------------------------------------------------


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None: ``$CURTAINWATCH_MOSQUITTO`` when set (that
    path and nothing else), else PATH, else Debian's /usr/sbin/mosquitto."""
    if configured := os.environ.get("CURTAINWATCH_MOSQUITTO"):
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.access(MOSQUITTO_FALLBACK, os.X_OK):
        return MOSQUITTO_FALLBACK
    return None


def find_postgres_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``: ``$CURTAINWATCH_PG_BINDIR``, then
    PATH, then Debian's ``/usr/lib/postgresql/<newest>/bin``; None if none has both."""
    candidates: list[Path] = []
    if configured := os.environ.get("CURTAINWATCH_PG_BINDIR"):
        candidates.append(Path(configured))
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    candidates.extend(debian)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    return None


def find_chromium() -> Path | None:
    """Debian's Chromium at /usr/bin/chromium (never a downloaded browser), or None."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else None


# --- the table the fixtures and the preflight share -------------------------------------


@dataclass(frozen=True)
class External(Generic[T]):
    """One thing from outside Python, how to find it and how to install it on Debian."""

    name: str
    find: Callable[[], T | None]
    looked: str  # where find() looks, for the messages
    packages: str  # Debian packages, space-separated
    passes: tuple[str, ...] = ("sqlite", "postgresql")  # CURTAINWATCH_TEST_DB values

    @property
    def install(self) -> str:
        return f"sudo apt-get install {self.packages}"

    @property
    def problem(self) -> str:
        return f"{self.name} not found ({self.looked})"

    def require(self) -> T:
        """Its path; else skip the test (fail under ``CI=true``) saying how to install it."""
        found = self.find()
        require(found, self.problem, self.install)
        assert found is not None
        return found


MOSQUITTO = External(
    "mosquitto (the MQTT broker)",
    find_mosquitto,
    "$CURTAINWATCH_MOSQUITTO if set, else PATH, else /usr/sbin/mosquitto",
    "mosquitto",
)
POSTGRESQL = External(
    "PostgreSQL server binaries (initdb, postgres)",
    find_postgres_bindir,
    "$CURTAINWATCH_PG_BINDIR, PATH, /usr/lib/postgresql/*/bin",
    "postgresql",
    passes=("postgresql",),
)
CHROMIUM_BROWSER = External(
    "Chromium (the browser the dashboard tests drive)",
    find_chromium,
    str(CHROMIUM),
    "chromium fonts-noto-cjk",
)
EXTERNALS: tuple[External[Any], ...] = (MOSQUITTO, POSTGRESQL, CHROMIUM_BROWSER)


def missing(passes: Iterable[str]) -> list[External[Any]]:
    """The externals that the given passes (``sqlite``, ``postgresql``) need and lack."""
    wanted = set(passes)
    return [ext for ext in EXTERNALS if wanted & set(ext.passes) and ext.find() is None]
