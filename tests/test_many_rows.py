"""monitor.many_rows: the fast executemany stores exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from monitor.many_rows import ManyRows, sqlite_utc
from monitor.models import UTCDateTime

_DIALECT = sqlite.dialect()
_SQLALCHEMY = UTCDateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT)

zones = st.one_of(
    st.just(UTC),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda m: timezone(timedelta(minutes=m))
    ),
)
# Far enough from the ends of datetime's range that converting to UTC stays inside it.
aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30), timezones=zones)


@given(aware)
def test_sqlite_text_is_sqlalchemys(value: datetime) -> None:
    assert _SQLALCHEMY is not None
    assert sqlite_utc(value) == _SQLALCHEMY(value)


def test_a_naive_time_is_refused() -> None:
    try:
        sqlite_utc(datetime(2026, 12, 5, 7, 30))
    except ValueError as exc:
        assert "naive datetime 2026-12-05T07:30:00" in str(exc)
    else:
        raise AssertionError("a naive datetime was stored")


def test_rows_read_back_as_written() -> None:
    meta = MetaData()
    t = Table(
        "t",
        meta,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime()),
        Column("plain", DateTime()),
    )
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    cst = timezone(timedelta(hours=8))
    rows = [
        (1, datetime(2026, 12, 5, 7, 40, 0, 123, tzinfo=cst), datetime(2026, 12, 5, 7, 40)),
        (2, datetime(2026, 12, 5, 0, 0, tzinfo=UTC), None),
        (3, None, datetime(1999, 1, 1)),
    ]
    with Session(engine) as session:
        ManyRows(insert(t), ("id", "at", "plain")).execute(session, rows)
        session.commit()
        got = session.execute(select(t.c.id, t.c.at, t.c.plain).order_by(t.c.id)).all()
    assert [tuple(r) for r in got] == [
        (1, datetime(2026, 12, 4, 23, 40, 0, 123, tzinfo=UTC), datetime(2026, 12, 5, 7, 40)),
        (2, datetime(2026, 12, 5, 0, 0, tzinfo=UTC), None),
        (3, None, datetime(1999, 1, 1)),
    ]
