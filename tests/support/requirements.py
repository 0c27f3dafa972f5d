"""The missing-dependency rule: skip on a developer machine, fail under CI.

Every fixture that needs something outside Python (Mosquitto, PostgreSQL, Chromium,
../shared/data) calls :func:`require`, so a CI machine that lacks a dependency
fails loudly instead of going green with half the suite skipped.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["in_ci", "require"]


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
