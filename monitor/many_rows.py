"""Many rows through one statement, fast: an INSERT or UPDATE run for a batch of rows in
one DBAPI executemany with the parameters built by generated code, not by SQLAlchemy's
per-row assembly. The ingestor's writes and the engine's re-arming of inactivity go
through it; anything run once per batch or less should use `session.execute`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Dialect, Insert, Update
from sqlalchemy.orm import Session

from monitor.models import UTCDateTime


class ManyRows:
    """A statement run for many rows in one DBAPI executemany, the hot path of every batch.

    Same SQL, same transaction and the same stored values as `session.execute(stmt, rows)`
    (each value but None goes through its type's bind processor for the dialect, as
    SQLAlchemy does; every processor here maps None to None),
    minus SQLAlchemy's per-row parameter assembly, which cost ~10 us a row: a fifth of the
    ingestor's time with 2000-message batches. Dialects with named paramstyles (psycopg) take
    the ordinary path. Rows are tuples in the order of `names` (the statement's bind names).
    `stmt` may be one statement per dialect name (dialect-specific clauses like ON CONFLICT).
    """

    def __init__(self, stmt: Insert | Update | dict[str, Insert], names: Sequence[str]) -> None:
        self.stmts = stmt if isinstance(stmt, dict) else None
        self.stmt = stmt if not isinstance(stmt, dict) else None
        self.names = tuple(names)
        self._plans: dict[str, _Plan | None] = {}

    def _statement(self, dialect: Dialect) -> Insert | Update:
        if self.stmts is None:
            assert self.stmt is not None
            return self.stmt
        return self.stmts[dialect.name]

    def execute(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = session.connection()
        dialect = conn.dialect
        if dialect.name not in self._plans:
            self._plans[dialect.name] = self._plan(dialect)
        plan = self._plans[dialect.name]
        if plan is None:
            session.execute(
                self._statement(dialect),
                [dict(zip(self.names, row, strict=True)) for row in rows],
            )
            return
        sql, convert = plan
        conn.exec_driver_sql(sql, list(map(convert, rows)))

    def _plan(self, dialect: Dialect) -> _Plan | None:
        """(SQL text, a function from a row to its parameters in the SQL's order), or None
        when the dialect does not take positional parameters."""
        compiled: Any = self._statement(dialect).compile(dialect=dialect)
        order = compiled.positiontup
        if not compiled.positional or order is None or set(order) != set(self.names):
            return None
        columns: list[tuple[int, _Processor | None]] = []
        for name in order:
            kind = compiled.binds[name].type
            proc = kind.dialect_impl(dialect).bind_processor(dialect)
            if isinstance(kind, UTCDateTime) and dialect.name == "sqlite" and _agrees(proc):
                proc = sqlite_utc
            columns.append((self.names.index(name), proc))
        return compiled.string, _converter(columns)


def _converter(columns: Sequence[tuple[int, _Processor | None]]) -> _Convert:
    """A function taking a row to its parameters: column `i` of the row, through its
    processor unless None, for each (i, processor) in `columns`. Generated as straight-line
    code (as `dataclasses` does) because a loop over the columns cost a quarter of a row's
    time: ~3 us of ~12 for a device row."""
    scope: dict[str, Any] = {}
    parts = []
    for n, (i, proc) in enumerate(columns):
        if proc is None:
            parts.append(f"row[{i}]")
        else:
            scope[f"p{n}"] = proc
            parts.append(f"(None if row[{i}] is None else p{n}(row[{i}]))")
    exec(f"def convert(row):\n    return ({', '.join(parts)},)\n", scope)
    convert: _Convert = scope["convert"]
    return convert


def sqlite_utc(value: datetime) -> str:
    """An aware datetime as UTCDateTime stores it on SQLite: the text SQLAlchemy's two
    processors make (UTC, naive, then its storage format), for less: a batch binds three
    times per device and two per event. An event without a time of its own binds one
    datetime object twice (ts and received_at, side by side): the second is remembered."""
    global _last_utc
    last = _last_utc
    if value is last[0]:
        return last[1]
    if value.tzinfo is UTC:  # the clock's times and what the database gave back
        # Formatted by hand: an aware isoformat() costs a third more (its offset).
        v = value
        text = _TEXT % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    else:
        offset = value.utcoffset()
        if offset is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; times must carry a zone")
        text = (value.replace(tzinfo=None) - offset).isoformat(" ", "microseconds")
    _last_utc = (value, text)  # one tuple, swapped whole: safe for writers in other threads
    return text


_last_utc: tuple[datetime | None, str] = (None, "")
_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _agrees(proc: _Processor | None) -> bool:
    """Does `sqlite_utc` store what SQLAlchemy's own processor does? Checked once per
    statement, so a change of SQLAlchemy's storage format falls back to its processor."""
    if proc is None:
        return False
    samples = (
        datetime(2026, 11, 23, 7, 31, 5, 120, tzinfo=timezone(timedelta(hours=8))),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    )
    return all(proc(v) == sqlite_utc(v) for v in samples)


_Processor = Callable[[Any], Any]
_Convert = Callable[[tuple[Any, ...]], tuple[Any, ...]]
_Plan = tuple[str, _Convert]
