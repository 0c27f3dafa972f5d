"""Bulk-load a generated community for the benchmarks, fast.

`monitor.importing.apply.apply_community` goes through the ORM one resident at a time (several
statements each, ~6-8 ms per resident here), too slow for 10k-100k residents. This module
writes the same rows with batched Core inserts, filling every column exactly as the
importer fills it for a new resident (routine windows from `monitor.rules.windows`, matches
from `monitor.importing.community.ROUTINE_MATCH`, slots from `RoutineSpec.slot`), and
`check_like_importer`
proves it on a sample: it imports the sample through `apply_community` into a scratch
database and compares the rows column by column.

Every resident of a generated community has the same devices and routines (a template);
only ids, names and buildings differ, so the routine windows are computed once.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, bindparam, insert, select

from monitor.db import make_engine, session_factory, upgrade
from monitor.importing.apply import apply_community
from monitor.importing.community import ROUTINE_MATCH, RoutineSpec
from monitor.importing.load import load_community
from monitor.models import AwayPeriod, Community, Device, Resident, Routine, Schedule, table
from monitor.models import table as table_of
from monitor.rules.windows import first_window_due_after, inactivity_due, local_date

CHUNK = 5000  # residents per INSERT batch


@dataclass(frozen=True)
class Template:
    """What every resident has: devices as (id prefix, kind), routines as community-file
    entries, in the community's time zone."""

    timezone: str
    devices: tuple[tuple[str, str], ...]
    routines: tuple[dict[str, Any], ...]

    def resident_id(self, i: int) -> str:
        return f"r-{i:06d}"

    def device_id(self, prefix: str, i: int) -> str:
        return f"{prefix}-{i:06d}"

    def resident_doc(self, i: int, away: Sequence[tuple[date, date]] = ()) -> dict[str, Any]:
        """Resident `i` as a community-file entry."""
        doc: dict[str, Any] = {
            "id": self.resident_id(i),
            "name": f"Resident {i}",
            "building": str(i // 100),
            "unit": f"{i % 100:02d}",
            "devices": [{"id": self.device_id(p, i), "kind": k} for p, k in self.devices],
            "routines": [dict(r) for r in self.routines],
        }
        if away:
            doc["away"] = [{"from": a.isoformat(), "to": b.isoformat()} for a, b in away]
        return doc

    def community_text(self, residents: Sequence[dict[str, Any]]) -> str:
        """A community file (JSON is YAML) holding `residents`."""
        return json.dumps({"timezone": self.timezone, "residents": list(residents)})

    def routine_specs(self) -> list[RoutineSpec]:
        """The routines as the community loader validates them (help added where due)."""
        spec = load_community(self.community_text([self.resident_doc(0)]))
        return list(spec.residents[0].routines)


def routine_columns(
    x: RoutineSpec, tz_name: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The columns monitor.importing.apply._schedule sets on a new routine imported at `now`, and
    those of its schedule (None for help and inactivity)."""
    tz = ZoneInfo(tz_name)
    start = x.start.strftime("%H:%M") if x.start else None
    end = x.end.strftime("%H:%M") if x.end else None
    match_kind, match_value = ROUTINE_MATCH[x.kind]
    cols: dict[str, Any] = {
        "kind": x.kind,
        "slot": x.slot,
        "start": start,
        "end": end,
        "grace_s": int(x.grace.total_seconds()),
        "hours": x.hours,
        "timezone": tz_name,
        "match_kind": match_kind,
        "match_value": match_value,
        "active": True,
    }
    cols.update(schedule_id=None, window_date=None, next_due_at=None)
    if x.kind == "inactivity":
        assert x.hours is not None
        due = inactivity_due(now, x.hours)
        cols.update(window_date=local_date(due, tz), next_due_at=due)
    elif x.kind != "help":
        assert x.start is not None and x.end is not None
        w = first_window_due_after(now, x.start, x.end, x.grace, tz)
        return cols, {
            "timezone": tz_name,
            "start": start,
            "end": end,
            "grace_s": cols["grace_s"],
            "window_date": w.day,
            "window_start_at": w.opens_at,
            "next_due_at": w.due_at,
        }
    return cols, None


def _chunks(n: int, size: int) -> Iterator[range]:
    for lo in range(0, n, size):
        yield range(lo, min(n, lo + size))


def load(
    engine: Engine,
    template: Template,
    n: int,
    now: datetime,
    away: dict[int, list[tuple[date, date]]] | None = None,
) -> dict[str, int]:
    """Insert `n` residents of `template` (plus their away periods) as if imported at `now`
    into the (migrated, empty) database behind `engine`. Returns row counts."""
    away = away or {}
    counts = {"residents": 0, "devices": 0, "routines": 0, "away_periods": 0}
    with engine.begin() as conn:
        routines = []
        for x in template.routine_specs():
            cols, schedule = routine_columns(x, template.timezone, now)
            if schedule is not None:  # every resident's routine of this slot shares it
                cols["schedule_id"] = conn.execute(
                    insert(table(Schedule)).returning(table(Schedule).c.id), [schedule]
                ).scalar_one()
            routines.append(cols)
        conn.execute(
            insert(table(Community)),
            [{"id": 1, "timezone": template.timezone, "escalation": [], "imported_at": now}],
        )
        for ids in _chunks(n, CHUNK):
            _insert(
                conn,
                counts,
                "residents",
                table(Resident),
                [
                    {
                        "id": template.resident_id(i),
                        "name": f"Resident {i}",
                        "building": str(i // 100),
                        "unit": f"{i % 100:02d}",
                        "timezone": template.timezone,
                        "active": True,
                    }
                    for i in ids
                ],
            )
            _insert(
                conn,
                counts,
                "devices",
                table(Device),
                [
                    {
                        "id": template.device_id(p, i),
                        "resident_id": template.resident_id(i),
                        "kind": k,
                        "light_threshold": 30.0,
                        "state": None,
                        "last_seen": None,
                        "battery": None,
                        "online": None,
                        "alive_until": None,
                        "created_at": now,
                    }
                    for i in ids
                    for p, k in template.devices
                ],
            )
            _insert(
                conn,
                counts,
                "routines",
                table(Routine),
                [
                    {"resident_id": template.resident_id(i), **cols}
                    for i in ids
                    for cols in routines
                ],
            )
            _insert(
                conn,
                counts,
                "away_periods",
                table(AwayPeriod),
                [
                    {"resident_id": template.resident_id(i), "first_day": a, "last_day": b}
                    for i in ids
                    for a, b in away.get(i, ())
                ],
            )
    return counts


def _insert(
    conn: Connection, counts: dict[str, int], name: str, table: Any, rows: list[dict[str, Any]]
) -> None:
    if rows:
        conn.execute(insert(table), rows)
        counts[name] += len(rows)


class FastInsert:
    """A Core INSERT for very many rows: compiled once, run as DBAPI executemany (SQLite)
    or psycopg's COPY (PostgreSQL) with each value put through its column type's bind
    processor for the dialect (so stored values are exactly what
    `conn.execute(insert(table), rows)` would store), memoising the processed values of
    repeated datetimes. Several times faster than plain Core executemany."""

    def __init__(self, conn: Connection, table: Any, columns: Sequence[str]) -> None:
        dialect = conn.dialect
        self.conn = conn
        self._memo: dict[Any, Any] = {}
        self.copy: str | None = None
        if dialect.name == "postgresql":
            quote = dialect.identifier_preparer.quote
            self.copy = f"COPY {quote(table.name)} ({', '.join(map(quote, columns))}) FROM STDIN"
            self.order = list(range(len(columns)))
            self.procs = [
                table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns
            ]
            return
        compiled: Any = (
            insert(table).values({c: bindparam(c) for c in columns}).compile(dialect=dialect)
        )
        if not compiled.positional or set(compiled.positiontup) != set(columns):
            raise NotImplementedError(f"FastInsert needs a positional dialect, not {dialect.name}")
        self.sql: str = compiled.string
        self.order = [list(columns).index(n) for n in compiled.positiontup]
        self.procs = [
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
            for n in compiled.positiontup
        ]

    def _value(self, proc: Any, value: Any) -> Any:
        if proc is None or value is None:
            return value if proc is None else proc(value)
        if isinstance(value, datetime):
            key = (id(proc), value)
            done = self._memo.get(key)
            if done is None:
                done = self._memo[key] = proc(value)
            return done
        return proc(value)

    def run(self, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        pairs = list(zip(self.order, self.procs, strict=True))
        values = [tuple([self._value(p, row[i]) for i, p in pairs]) for row in rows]
        if self.copy is None:
            self.conn.exec_driver_sql(self.sql, values)
            return len(rows)
        # The connection's own transaction: COPY through the psycopg connection under it.
        driver: Any = self.conn.connection.driver_connection
        with driver.cursor() as cur, cur.copy(self.copy) as copy:
            for value in values:
                copy.write_row(value)
        return len(rows)


_COMPARED = {
    "residents": (table(Resident), ("id",)),
    "devices": (table(Device), ("id",)),
    "routines": (table(Routine), ("resident_id", "slot")),
    "away_periods": (table(AwayPeriod), ("resident_id", "first_day")),
}


def check_like_importer(
    template: Template,
    sample: Sequence[int],
    now: datetime,
    away: dict[int, list[tuple[date, date]]] | None = None,
) -> None:
    """Import residents `sample` once through monitor.importing.apply.apply_community and once
    through `load`, each into a scratch SQLite database, and assert the rows are equal
    (all columns but surrogate ids). Raises AssertionError naming the first difference."""
    away = away or {}
    docs = [template.resident_doc(i, away.get(i, ())) for i in sample]
    with tempfile.TemporaryDirectory(prefix="cw-bulk-check-") as tmp:
        real, bulk = Path(tmp) / "importer.db", Path(tmp) / "bulk.db"
        for db in (real, bulk):
            upgrade(f"sqlite:///{db}")
        real_engine = make_engine(f"sqlite:///{real}")
        with session_factory(real_engine).begin() as session:
            apply_community(session, load_community(template.community_text(docs)), now)
        # `load` numbers residents 0..n-1: load enough and keep only the sample.
        bulk_engine = make_engine(f"sqlite:///{bulk}")
        load(bulk_engine, template, max(sample) + 1, now, away)
        try:
            ids = [template.resident_id(i) for i in sample]
            for name, (table, key) in _COMPARED.items():
                got = _rows(bulk_engine, table, key, ids)
                want = _rows(real_engine, table, key, ids)
                assert got == want, f"{name}: bulk {got[:2]} != importer {want[:2]}"
        finally:
            real_engine.dispose()
            bulk_engine.dispose()


def _rows(engine: Engine, table: Any, key: tuple[str, ...], residents: list[str]) -> list[Any]:
    col = table.c.resident_id if "resident_id" in table.c else table.c.id
    # Integer ids differ, naturally; a routine's schedule is compared by what it holds.
    surrogate = ("id", "schedule_id") if table.name in ("routines", "away_periods") else ()
    cols = [c for c in table.c if c.name not in surrogate]
    source = table
    if table.name == "routines":
        sc = table_of(Schedule)
        cols += [c for c in sc.c if c.name != "id"]
        source = table.outerjoin(sc, sc.c.id == table.c.schedule_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols)
            .select_from(source)
            .where(col.in_(residents))
            .order_by(*(table.c[k] for k in key))
        ).all()
    return [tuple(r) for r in rows]
