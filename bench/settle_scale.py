#!/usr/bin/env python3
"""Settle benchmark: one scheduler tick over a city-sized community, next to the one bare
set-based SQL query that finds the same missed windows.

1. In a child process (so its memory does not count below), build the database (SQLite,
   or with --database postgresql a throwaway cluster): --residents residents, each with a
   curtain, a door and a light sensor and five routines (curtain_open 07:00-09:00 +15m
   grace, curtain_close 18:00-22:30, light_on 17:30-21:00, door 06:00-22:00, inactivity
   12h), written with bulk inserts exactly as monitor.importing.apply would write them (checked
   against it on a sample), positioned where the engine leaves them after settling the week
   so far; a week of events (each routine satisfied on most days, missed at random --miss
   of the time), the week's settlements and resolved alerts, a few residents away and a few
   curtain sensors offline or silent.
2. With a SimulatedClock at 09:15 on the last day (every curtain_open window due, nothing
   else), run the bare query (read-only) twice and time the second, then time
   Runtime.engine.settle_due() once, counting its SQL statements, then (SQLite) time the
   WAL checkpoint the runtime's checkpoint job runs next, outside the tick.
3. Check that the windows settled missed are exactly the rows the bare query found, and
   report settle seconds, query seconds, their ratio without and with the checkpoint
   (target <= 2.0), the windows settled by outcome, the statements issued and the peak RSS
   of this process (target <= 300 MB).

    .venv/bin/python bench/settle_scale.py [--residents 100000] [--database postgresql]
        [--floor] [--profile]

Exits 1 if a check fails, 0 otherwise (a missed target is printed, not an error).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
from sqlalchemy import Connection, bindparam, case, event, func, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for `bench.bulk` and the packages

from bench.bulk import FastInsert, Template, check_like_importer, load  # noqa: E402
from curtainwatch.runtime import Runtime  # noqa: E402
from monitor.clock import SimulatedClock  # noqa: E402
from monitor.config import Settings  # noqa: E402
from monitor.db import WAL_SAFETY_NET_PAGES, checkpoint, make_engine, upgrade  # noqa: E402
from monitor.models import (  # noqa: E402
    Alert,
    Device,
    Event,
    Routine,
    Schedule,
    Settlement,
    UTCDateTime,
    table,
)
from monitor.rules.windows import window_on  # noqa: E402

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
LAST_DAY = date(2026, 11, 23)
TARGET_RATIO = 2.0
TARGET_RSS_MB = 300
ROUTINES: tuple[dict[str, Any], ...] = (
    {"kind": "curtain_open", "start": "07:00", "end": "09:00", "grace": "15m"},
    {"kind": "curtain_close", "start": "18:00", "end": "22:30"},
    {"kind": "light_on", "start": "17:30", "end": "21:00"},
    {"kind": "door", "start": "06:00", "end": "22:00"},
    {"kind": "inactivity", "hours": 12},
)
TEMPLATE = Template(
    TZ_NAME, (("curtain", "curtain"), ("door", "door"), ("light", "light")), ROUTINES
)
WINDOW_ROUTINES = 4  # the first four routines have windows; ids follow the template order
CHUNK = 2000  # residents per generated batch


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, dtime(hh, mm), tzinfo=TZ).astimezone(UTC)


def tick_time() -> datetime:
    """09:15 on the last day: every curtain_open window (07:00-09:00 + 15m) is due."""
    return local(LAST_DAY, 9, 15)


# -- building the database (child process) -------------------------------------------------


class Plan:
    """Who is away and whose curtain sensor is dead; deterministic from the seed."""

    def __init__(self, residents: int, away_share: float, offline_share: float, seed: int) -> None:
        rng = random.Random(seed)
        ids = list(range(residents))
        rng.shuffle(ids)
        n_away, n_off = round(residents * away_share), round(residents * offline_share)
        self.away = set(ids[:n_away])
        self.offline = set(ids[n_away : n_away + n_off // 2])  # availability says offline
        self.silent = set(ids[n_away + n_off // 2 : n_away + n_off])  # quiet since 2 days
        self.away_days = (LAST_DAY - timedelta(days=1), LAST_DAY + timedelta(days=2))


def build_database(
    url: str,
    residents: int,
    days: int,
    miss: float,
    away_share: float,
    offline_share: float,
    seed: int,
) -> None:
    """Child process: create and fill the (empty) database at `url` (see the module doc)."""
    t0 = time.perf_counter()
    plan = Plan(residents, away_share, offline_share, seed)
    imported_at = local(LAST_DAY, 0)  # the engine has settled every window before this day
    away = {i: [plan.away_days] for i in plan.away}
    sample = sorted([0, 1, min(plan.away), min(plan.offline | plan.silent | {2})])
    check_like_importer(TEMPLATE, sample, imported_at, away)
    upgrade(url)
    engine = make_engine(url)
    counts = load(engine, TEMPLATE, residents, imported_at, away)
    with engine.begin() as conn:
        _check_routine_ids(conn, residents)
        _set_device_state(conn, plan)
        events, settlements, alerts = _history(conn, residents, days, miss, plan, seed)
    if engine.dialect.name == "postgresql":
        # What autovacuum would have done by then: planner statistics, visibility map.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    else:
        size = Path(engine.url.database or "").stat().st_size
    engine.dispose()
    print(
        f"built {counts['residents']} residents, {counts['devices']} devices, "
        f"{counts['routines']} routines, {counts['away_periods']} away periods, "
        f"{events} events, {settlements} settlements, {alerts} alerts "
        f"in {time.perf_counter() - t0:.0f}s "
        f"({(size or 0) / 2**20:.0f} MiB; builder peak RSS {_peak_rss_mb():.0f} MB)",
        flush=True,
    )


def _check_routine_ids(conn: Connection, residents: int) -> None:
    """load() inserts routines resident by resident in template order into an empty table,
    so routine id = 5 * resident + position + 1; settlements and alerts rely on it."""
    R = table(Routine)
    lo, hi, n = conn.execute(select(func.min(R.c.id), func.max(R.c.id), func.count())).one()
    per = len(ROUTINES)
    assert (lo, hi, n) == (1, per * residents, per * residents), (lo, hi, n)
    for i in (0, residents - 1):
        rows = conn.execute(
            select(R.c.id, R.c.kind)
            .where(R.c.resident_id == TEMPLATE.resident_id(i))
            .order_by(R.c.id)
        ).all()
        assert rows == [(per * i + k + 1, r["kind"]) for k, r in enumerate(ROUTINES)], rows


def _set_device_state(conn: Connection, plan: Plan) -> None:
    """Devices as the ingestor leaves them after a week: seen recently, battery fine."""
    D = table(Device)
    now = tick_time()
    seen = now - timedelta(minutes=10)
    conn.execute(
        update(D).values(
            last_seen=seen,
            battery=90.0,
            online=True,
            alive_until=seen + timedelta(hours=25),
            state=case((D.c.kind == "door", "closed"), (D.c.kind == "light", "off"), else_="open"),
        )
    )
    curtains = [TEMPLATE.device_id("curtain", i) for i in sorted(plan.offline)]
    if curtains:
        conn.execute(update(D).where(D.c.id.in_(curtains)).values(online=False))
    quiet = now - timedelta(days=2)
    curtains = [TEMPLATE.device_id("curtain", i) for i in sorted(plan.silent)]
    if curtains:
        conn.execute(
            update(D)
            .where(D.c.id.in_(curtains))
            .values(last_seen=quiet, alive_until=quiet + timedelta(hours=25))
        )


def _history(
    conn: Connection, residents: int, days: int, miss: float, plan: Plan, seed: int
) -> tuple[int, int, int]:
    """Events for `days` days up to the tick, settlements and (resolved) alerts for every
    window before the last day. Returns the row counts."""
    rng = random.Random(seed + 1)
    cutoff = tick_time()
    day_list = [LAST_DAY - timedelta(days=k) for k in range(days - 1, -1, -1)]
    windows = {
        (d, k): window_on(
            d, _hm(r["start"]), _hm(r["end"]), timedelta(minutes=15 if "grace" in r else 0), TZ
        )
        for d in day_list
        for k, r in enumerate(ROUTINES[:WINDOW_ROUTINES])
    }
    midnight = {d: local(d, 0) for d in day_list}
    ev = FastInsert(
        conn, table(Event), ("resident_id", "device_id", "kind", "value", "ts", "received_at")
    )
    st = FastInsert(
        conn,
        table(Settlement),
        ("routine_id", "resident_id", "kind", "window_date", "due_at", "outcome", "settled_at"),
    )
    al = FastInsert(
        conn,
        table(Alert),
        (
            "resident_id",
            "routine_id",
            "kind",
            "cause",
            "severity",
            "status",
            "detail",
            "due_at",
            "raised_at",
            "last_raised_at",
            "repeats",
            "resolved_at",
            "outcome",
            "resolved_by",
            "escalation_level",
        ),
    )
    n_ev = n_st = n_al = 0
    for lo in range(0, residents, CHUNK):
        events: list[tuple[Any, ...]] = []
        settled: list[tuple[Any, ...]] = []
        alerts: list[tuple[Any, ...]] = []
        for i in range(lo, min(residents, lo + CHUNK)):
            rid = TEMPLATE.resident_id(i)
            curtain, door, light = (TEMPLATE.device_id(p, i) for p in ("curtain", "door", "light"))
            for d in day_list:
                away = i in plan.away and plan.away_days[0] <= d <= plan.away_days[1]
                dead = d == LAST_DAY and i in (plan.offline | plan.silent)
                missed = [rng.random() < miss for _ in range(WINDOW_ROUTINES)]
                if not away:
                    day_events = _day_events(rng, midnight[d], missed, dead, curtain, door, light)
                    events.extend(
                        (rid, dev, kind, value, ts, ts)
                        for dev, kind, value, ts in day_events
                        if ts < cutoff
                    )
                if d == LAST_DAY:
                    continue
                for k in range(WINDOW_ROUTINES):
                    w = windows[d, k]
                    routine_id = len(ROUTINES) * i + k + 1
                    outcome = "away" if away else "missed" if missed[k] else "satisfied"
                    settled.append(
                        (
                            routine_id,
                            rid,
                            ROUTINES[k]["kind"],
                            d,
                            w.due_at,
                            outcome,
                            w.due_at + timedelta(seconds=20),
                        )
                    )
                    if outcome == "missed":
                        alerts.append(
                            (
                                rid,
                                routine_id,
                                "missed_routine",
                                f"routine:{routine_id}",
                                "warning",
                                "resolved",
                                "",
                                w.due_at,
                                w.due_at,
                                w.due_at,
                                0,
                                w.due_at + timedelta(minutes=40),
                                "fine",
                                "v-bench",
                                0,
                            )
                        )
        n_ev += ev.run(events)
        n_st += st.run(settled)
        n_al += al.run(alerts)
    return n_ev, n_st, n_al


def _day_events(
    rng: random.Random,
    midnight: datetime,
    missed: list[bool],
    dead: bool,
    curtain: str,
    door: str,
    light: str,
) -> list[tuple[str, str, str, datetime]]:
    """One day of one resident: curtain opens in the morning and closes in the evening,
    light on in the evening and off at night, one to three trips through the door. A
    missed routine has no satisfying event in its window (half the time a late one)."""
    m = timedelta(minutes=1)
    out: list[tuple[str, str, str, datetime]] = []
    if not dead:  # a dead curtain sensor reports nothing
        if not missed[0]:
            out.append((curtain, "curtain", "open", midnight + (420 + rng.randrange(120)) * m))
        elif rng.random() < 0.5:
            out.append((curtain, "curtain", "open", midnight + (570 + rng.randrange(90)) * m))
        if not missed[1]:
            out.append((curtain, "curtain", "closed", midnight + (1080 + rng.randrange(270)) * m))
        elif rng.random() < 0.5:
            out.append((curtain, "curtain", "closed", midnight + (1380 + rng.randrange(50)) * m))
    if not missed[2]:
        out.append((light, "light", "on", midnight + (1050 + rng.randrange(210)) * m))
        out.append((light, "light", "off", midnight + (1320 + rng.randrange(90)) * m))
    if not missed[3]:
        for _ in range(1 + rng.randrange(3)):
            t = midnight + (360 + rng.randrange(950)) * m
            out.append((door, "door", "open", t))
            out.append((door, "door", "closed", t + (1 + rng.randrange(9)) * m))
    return out


def _hm(value: str) -> dtime:
    h, mm = value.split(":")
    return dtime(int(h), int(mm))


# -- measuring (this process) ---------------------------------------------------------------

# Written straight from the semantics in docs/decisions.md ("A routine is a window that settles
# once"), independently of monitor/rules/engine.py: a due window is missed when no matching
# event falls inside it, the resident is not away that day, and some live device could have
# shown the routine. A windowed routine's window is its schedule's; an inactivity routine is
# due at its own time and no event satisfies it once due.
_MISSED_WHERE = """
  AND NOT EXISTS (
    SELECT 1 FROM away_periods AS a
    WHERE a.resident_id = r.resident_id
      AND a.first_day <= {day} AND a.last_day >= {day})
  AND EXISTS (
    SELECT 1 FROM devices AS d
    WHERE d.resident_id = r.resident_id
      AND (r.match_kind IS NULL OR d.kind = r.match_kind)
      AND (d.online IS NULL OR d.online)
      AND d.last_seen IS NOT NULL
      AND (d.alive_until IS NULL OR d.alive_until >= {due}))"""
BARE_MISSED = text(
    """
SELECT r.id FROM schedules AS w JOIN routines AS r ON r.schedule_id = w.id
WHERE w.next_due_at <= :now AND r.active
  AND NOT EXISTS (
    SELECT 1 FROM events AS e
    WHERE e.resident_id = r.resident_id
      AND e.ts >= w.window_start_at AND e.ts < w.next_due_at
      AND (r.match_kind IS NULL OR e.kind = r.match_kind)
      AND (r.match_value IS NULL OR e.value = r.match_value))"""
    + _MISSED_WHERE.format(day="w.window_date", due="w.next_due_at")
    + """
UNION ALL
SELECT r.id FROM routines AS r WHERE r.active AND r.next_due_at <= :now"""
    + _MISSED_WHERE.format(day="r.window_date", due="r.next_due_at")
).bindparams(bindparam("now", type_=UTCDateTime()))


_OUTCOME = """CASE
  WHEN EXISTS (SELECT 1 FROM events AS e WHERE e.resident_id = r.resident_id
      AND e.ts >= w.window_start_at AND e.ts < w.next_due_at
      AND (r.match_kind IS NULL OR e.kind = r.match_kind)
      AND (r.match_value IS NULL OR e.value = r.match_value)) THEN 'satisfied'
  WHEN EXISTS (SELECT 1 FROM away_periods AS a WHERE a.resident_id = r.resident_id
      AND a.first_day <= w.window_date AND a.last_day >= w.window_date) THEN 'away'
  WHEN NOT EXISTS (SELECT 1 FROM devices AS d WHERE d.resident_id = r.resident_id
      AND (r.match_kind IS NULL OR d.kind = r.match_kind)
      AND (d.online IS NULL OR d.online) AND d.last_seen IS NOT NULL
      AND (d.alive_until IS NULL OR d.alive_until >= w.next_due_at)) THEN 'unknown'
  ELSE 'missed' END"""
# At the tick only curtain_open windows are due (inactivity comes at 12:00 the earliest),
# so the floor leaves inactivity routines out.
FLOOR_STEPS = (
    (
        "INSERT INTO settlements SELECT ... outcome (no RETURNING)",
        f"""
INSERT INTO settlements (routine_id, resident_id, kind, window_date, due_at, outcome, settled_at)
SELECT r.id, r.resident_id, r.kind, w.window_date, w.next_due_at, {_OUTCOME}, :now
FROM schedules AS w JOIN routines AS r ON r.schedule_id = w.id
WHERE w.next_due_at <= :now AND r.active
ON CONFLICT (window_date, routine_id, due_at) DO NOTHING""",
    ),
    (
        "UPDATE schedules: advance the due one",
        """
UPDATE schedules SET window_date = :next_day, window_start_at = :next_open, next_due_at = :next_due
WHERE next_due_at = :now""",
    ),
)


def floor(url: str, bare_s: float) -> None:
    """The same writes as a settle tick, as hand-written SQL on a copy of the database (no
    engine, no alerts, same settings as the runtime's): what the database itself needs."""
    now = tick_time()
    nxt = window_on(LAST_DAY + timedelta(days=1), dtime(7), dtime(9), timedelta(minutes=15), TZ)
    engine = make_engine(url, wal_autocheckpoint=WAL_SAFETY_NET_PAGES)
    dt = UTCDateTime()
    params = {"now": now, "next_day": nxt.day, "next_open": nxt.opens_at, "next_due": nxt.due_at}
    try:
        with engine.connect() as conn:
            conn.execute(BARE_MISSED, {"now": now}).all()  # same warm-up as the bare query
            print("floor: the tick's writes as plain SQL on a copy (same settings):")
            total = 0.0
            for label, sql in FLOOR_STEPS:
                stmt = text(sql).bindparams(
                    *(
                        bindparam(k, type_=dt)
                        for k in ("now", "next_open", "next_due")
                        if f":{k}" in sql
                    )
                )
                t = time.perf_counter()
                rows = conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql})
                took = time.perf_counter() - t
                total += took
                print(f"    {took:6.3f}s  {label} ({rows.rowcount} rows)")
            t = time.perf_counter()
            conn.commit()
            took = time.perf_counter() - t
            total += took
            print(f"    {took:6.3f}s  COMMIT")
            print(f"    {total:6.3f}s  in all: {total / bare_s:.2f} x the bare query")
        t = time.perf_counter()
        frames = checkpoint(engine)
        took = time.perf_counter() - t
        if frames is not None:
            print(
                f"    {took:6.3f}s  and the WAL checkpoint after it ({frames}); with it "
                f"{(total + took) / bare_s:.2f} x the bare query"
            )
    finally:
        engine.dispose()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(url: str, profile: bool) -> tuple[bool, float]:
    """Time the bare query and the settle tick; print the figures. Returns (checks passed,
    bare query seconds)."""
    now = tick_time()
    rt = Runtime(Settings(database_url=url), clock=SimulatedClock(now), migrate=False)
    ok = True
    try:
        times = []
        with rt.db.connect() as conn:
            for _ in range(2):  # the first run warms the caches; the second is timed
                t, cpu = time.perf_counter(), time.process_time()
                missed_bare = {row[0] for row in conn.execute(BARE_MISSED, {"now": now})}
                times.append(time.perf_counter() - t)
                bare_cpu = time.process_time() - cpu
        bare_s = times[-1]
        rss_before = psutil.Process().memory_info().rss / 2**20

        statements: list[list[Any]] = []  # [SQL, parameter sets, seconds]

        def before(
            _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
        ) -> None:
            statements.append(
                [" ".join(statement.split())[:64], len(params) if many else 1, time.perf_counter()]
            )

        def after(*_: Any) -> None:
            statements[-1][2] = time.perf_counter() - statements[-1][2]

        event.listen(rt.db, "before_cursor_execute", before)
        event.listen(rt.db, "after_cursor_execute", after)
        prof = cProfile.Profile() if profile else None
        loadavg = os.getloadavg()[0]
        t, cpu = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        settled = rt.engine.settle_due()
        if prof:
            prof.disable()
        settle_s = time.perf_counter() - t
        settle_cpu = time.process_time() - cpu
        event.remove(rt.db, "before_cursor_execute", before)
        event.remove(rt.db, "after_cursor_execute", after)
        rss_tick = psutil.Process().memory_info().rss / 2**20
        # What the runtime's checkpoint job does next, in its own thread (curtainwatch.runtime).
        t = time.perf_counter()
        frames = rt.checkpoint()
        checkpoint_s = time.perf_counter() - t

        S, AL, SC = table(Settlement), table(Alert), table(Schedule)
        with rt.db.connect() as conn:
            outcomes: Counter[str] = Counter(
                dict(
                    conn.execute(
                        select(S.c.outcome, func.count())
                        .where(S.c.settled_at == now)
                        .group_by(S.c.outcome)
                    ).all()
                )
            )
            missed_settle = set(
                conn.execute(
                    select(S.c.routine_id).where(S.c.settled_at == now, S.c.outcome == "missed")
                ).scalars()
            )
            raised = conn.execute(
                select(func.count()).select_from(AL).where(AL.c.raised_at == now)
            ).scalar()
            due_left = (
                conn.execute(
                    select(func.count())
                    .select_from(table(Routine))
                    .where(table(Routine).c.next_due_at <= now)
                ).scalar()
                + conn.execute(
                    select(func.count()).select_from(SC).where(SC.c.next_due_at <= now)
                ).scalar()
            )
        ratio = settle_s / bare_s
        ratio_ck = (settle_s + checkpoint_s) / bare_s
        peak = _peak_rss_mb()

        sqlite = rt.db.dialect.name == "sqlite"
        print(
            f"tick at {now.astimezone(TZ):%Y-%m-%d %H:%M %Z} on {rt.db.dialect.name}; "
            f"load average {loadavg:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"bare query:  {bare_s:7.3f}s  finds {len(missed_bare)} missed windows "
            f"(first, cold run {times[0]:.3f}s)" + (f"; CPU time {bare_cpu:.3f}s" if sqlite else "")
        )
        print(
            f"settle_due:  {settle_s:7.3f}s  settled {settled} windows: "
            + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            + f"; {raised} alerts raised"
            + (f"; CPU time {settle_cpu:.3f}s" if sqlite else "")
        )
        if frames is None:
            print("checkpoint:  none to run (PostgreSQL checkpoints by itself)")
        else:
            print(
                f"checkpoint:  {checkpoint_s:7.3f}s  the runtime's checkpoint job right after "
                f"(busy, WAL frames, frames copied) = {frames}"
            )
        print(
            f"ratio settle / bare: {ratio:.2f} "
            f"({'ok' if ratio <= TARGET_RATIO else f'ABOVE {TARGET_RATIO}'}); "
            f"with the checkpoint: {ratio_ck:.2f} "
            f"({'ok' if ratio_ck <= TARGET_RATIO else f'ABOVE {TARGET_RATIO}'})"
        )
        if sqlite:  # SQLite works in this process: CPU time is less at the mercy of the load
            print(f"ratio of CPU times (tick without the checkpoint): {settle_cpu / bare_cpu:.2f}")
        print(
            f"SQL statements issued by settle_due: {len(statements)}, in order "
            "(identical neighbours merged):"
        )
        merged: list[list[Any]] = []
        for stmt, n, secs in statements:
            if merged and merged[-1][0] == stmt:
                merged[-1][1:] = [merged[-1][1] + 1, merged[-1][2] + n, merged[-1][3] + secs]
            else:
                merged.append([stmt, 1, n, secs])
        for stmt, times_, rows, secs in merged:
            print(f"    {times_:>4} x {stmt}  ({rows} parameter sets, {secs:.3f}s)")
        in_sql = sum(secs for *_, secs in merged)
        print(
            f"    time outside those statements (fetching rows, Python, COMMIT): "
            f"{settle_s - in_sql:.3f}s"
        )
        rss_verdict = "ok" if peak <= TARGET_RSS_MB else f"ABOVE {TARGET_RSS_MB} MB"
        print(
            f"peak RSS of this process: {peak:.0f} MB ({rss_before:.0f} MB before settling, "
            f"{rss_tick:.0f} MB after; {rss_verdict})"
        )

        checks = {
            "missed windows settled == bare query's": missed_settle == missed_bare,
            "one alert per missed window": raised == len(missed_bare),
            "every due window settled": due_left == 0 and settled == sum(outcomes.values()),
        }
        for name, good in checks.items():
            print(f"check: {name}: {'OK' if good else 'FAILED'}")
            ok &= good
        if not checks["missed windows settled == bare query's"]:
            print(
                f"    only settle: {sorted(missed_settle - missed_bare)[:10]}; "
                f"only bare: {sorted(missed_bare - missed_settle)[:10]}"
            )
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
    finally:
        rt.stop()
    return ok, bare_s


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(doc.split("\n\n")[1:]),
    )
    ap.add_argument("--residents", type=int, default=100_000, help="default 100000")
    ap.add_argument("--days", type=int, default=7, help="days of events (default 7)")
    ap.add_argument(
        "--miss",
        type=float,
        default=0.05,
        help="chance that a routine is missed on a day (default 0.05)",
    )
    ap.add_argument("--away", type=float, default=0.01, help="share of residents away (0.01)")
    ap.add_argument(
        "--offline",
        type=float,
        default=0.005,
        help="share of residents whose curtain sensor is dead (0.005)",
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--profile", action="store_true", help="cProfile the settle tick")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also time the tick's writes as plain SQL on a copy of the database",
    )
    ap.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite (default: a file in a temp dir) or postgresql (a throwaway cluster, "
        "tests/support/postgres.py, with durable settings while measuring)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite only)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cw-settle-scale-"))
    cluster: Any = None
    try:
        if args.database == "postgresql":
            cluster = _start_postgres()
            url = cluster.url(cluster.create_database("bench"))
        else:
            url = f"sqlite:///{work / 'settle.db'}"
        child = multiprocessing.get_context("spawn").Process(
            target=build_database,
            args=(url, args.residents, args.days, args.miss, args.away, args.offline, args.seed),
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            print(f"building the database failed (exit {child.exitcode})", file=sys.stderr)
            return 1
        if cluster is not None:
            _checkpoint_postgres(cluster)
        if args.keep and cluster is None:  # the state before the tick, to experiment on
            shutil.copyfile(work / "settle.db", work / "before-settle.db")
        floor_url = _copy(url, work, cluster) if args.floor else ""
        ok, bare_s = measure(url, args.profile)
        if args.floor:
            floor(floor_url, bare_s)
    finally:
        if cluster is not None:
            cluster.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def _start_postgres() -> Any:
    """A throwaway PostgreSQL cluster started as the test suite starts it, but durable
    (the suite turns fsync, synchronous_commit and full_page_writes off) and with room to
    cache."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import postgres

    bindir = postgres.find_postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries (initdb, postgres) not found")
    postgres.SERVER_SETTINGS.update(
        fsync="on", synchronous_commit="on", full_page_writes="on", shared_buffers="512MB"
    )
    return postgres.PostgresCluster(bindir).start()


def _checkpoint_postgres(cluster: Any) -> None:
    """Flush what building left dirty, so the tick does not pay for it; the tick's own
    first writes to each page then log full pages, as after any checkpoint."""
    import psycopg

    with psycopg.connect(cluster.url_params("postgres"), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _copy(url: str, work: Path, cluster: Any) -> str:
    """A copy of the built database, for --floor."""
    if cluster is None:
        shutil.copyfile(work / "settle.db", work / "floor.db")
        return f"sqlite:///{work / 'floor.db'}"
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url_params("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE floor TEMPLATE "{name}"')
    return str(cluster.url("floor"))


if __name__ == "__main__":
    sys.exit(main())
