"""Rotas and quiet hours on a simulated calendar."""

from __future__ import annotations

from datetime import datetime

import pytest

from alerts.duty import on_duty, quiet_until

WEEKDAYS = [{"days": [0, 1, 2, 3, 4], "from": "08:00", "to": "20:00"}]
SATURDAY_NIGHT = [{"days": [5], "from": "22:00", "to": "06:00"}]


@pytest.mark.parametrize(
    ("rota", "moment", "expected"),
    [
        ([], "2026-11-23T03:00", True),  # no rota: always on duty
        (WEEKDAYS, "2026-11-23T08:00", True),  # Monday
        (WEEKDAYS, "2026-11-23T20:00", False),
        (WEEKDAYS, "2026-11-28T12:00", False),  # Saturday
        (SATURDAY_NIGHT, "2026-11-28T23:30", True),
        (SATURDAY_NIGHT, "2026-11-29T05:59", True),  # Sunday morning, Saturday's spell
        (SATURDAY_NIGHT, "2026-11-29T06:00", False),
        (SATURDAY_NIGHT, "2026-11-23T02:00", False),  # Monday morning: Sunday had no spell
    ],
)
def test_on_duty(rota: list[dict[str, object]], moment: str, expected: bool) -> None:
    assert on_duty(rota, datetime.fromisoformat(moment)) is expected


def test_quiet_hours_across_midnight() -> None:
    quiet = {"from": "22:00", "to": "07:00"}
    assert quiet_until(quiet, datetime.fromisoformat("2026-11-23T21:59")) is None
    assert quiet_until(quiet, datetime.fromisoformat("2026-11-23T23:10")) == datetime(
        2026, 11, 24, 7, 0
    )
    assert quiet_until(quiet, datetime.fromisoformat("2026-11-24T06:59")) == datetime(
        2026, 11, 24, 7, 0
    )
    assert quiet_until(None, datetime.fromisoformat("2026-11-24T03:00")) is None
    assert quiet_until(
        {"from": "13:00", "to": "14:00"}, datetime.fromisoformat("2026-11-24T13:30")
    ) == datetime(2026, 11, 24, 14)
