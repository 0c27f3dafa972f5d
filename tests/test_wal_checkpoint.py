"""SQLite's WAL is checkpointed by the runtime's own job, not inside the COMMIT of a big
settle tick: the commit leaves its pages in the WAL, the job copies them into the database
file, and across many big writes the WAL stays the size of one instead of growing.

Always SQLite (a file in tmp_path), whatever CURTAINWATCH_TEST_DB says: PostgreSQL
checkpoints by itself, and the runtime schedules no job for it."""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import curtainwatch.runtime
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.db import WAL_SAFETY_NET_PAGES, checkpoint, make_engine, upgrade

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PAGE = 4096
BIG = 1500  # rows of about a page each: past SQLite's default threshold of 1000 pages


def write_big(engine: Engine, tag: str, rows: int = BIG) -> None:
    """One transaction of `rows` dead letters, each about a page."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO dead_letters (topic, payload, error, received_at)"
                " VALUES (:topic, :payload, 'bench', '2026-11-23 01:00:00')"
            ),
            [{"topic": f"{tag}/{i}", "payload": bytes(PAGE - 200)} for i in range(rows)],
        )


def rows_in_database_file(db: Path, tmp_path: Path) -> int:
    """Dead letters in the database file alone, as if the WAL were lost: what has been
    checkpointed."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(db, alone)
    with sqlite3.connect(alone) as conn:
        (n,) = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    alone.unlink()
    return int(n)


def wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_big_commit_leaves_its_pages_to_the_checkpoint_job(tmp_path: Path) -> None:
    db = tmp_path / "cw.db"
    rt = Runtime(Settings(database_url=f"sqlite:///{db}"), SimulatedClock(NOW))
    with rt.db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_SAFETY_NET_PAGES
    write_big(rt.db, "runtime")
    # Committed and readable, but still only in the WAL: the commit did not checkpoint.
    assert rows_in_database_file(db, tmp_path) == 0
    assert wal_bytes(db) > 1000 * PAGE

    busy, frames, copied = rt.checkpoint() or (None, None, None)
    assert busy == 0 and frames is not None and frames > 1000 and copied == frames
    assert rt.last_checkpoint == (busy, frames, copied)
    assert rows_in_database_file(db, tmp_path) == BIG
    rt.stop()


def test_other_engines_keep_sqlites_own_checkpoint_at_commit(tmp_path: Path) -> None:
    """Only the runtime, which runs the job, raises the threshold; a plain engine (CLI
    tools, scripts) still checkpoints inside a big commit."""
    db = tmp_path / "plain.db"
    upgrade(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    write_big(engine, "plain")
    assert rows_in_database_file(db, tmp_path) == BIG
    engine.dispose()


def test_the_wal_stays_the_size_of_one_big_write_with_checkpoints(tmp_path: Path) -> None:
    """Eight big transactions. Checkpointed after each (as the job does), the WAL is
    reused from the start and stays about one transaction long; without, it holds them
    all."""
    sizes: dict[str, list[int]] = {}
    for name, checkpointing in (("job", True), ("none", False)):
        db = tmp_path / f"{name}.db"
        upgrade(f"sqlite:///{db}")
        engine = make_engine(f"sqlite:///{db}", wal_autocheckpoint=WAL_SAFETY_NET_PAGES)
        sizes[name] = []
        for round_ in range(8):
            write_big(engine, f"{name}-{round_}")
            if checkpointing:
                busy, frames, copied = checkpoint(engine) or (1, 0, -1)
                assert busy == 0 and copied == frames
            sizes[name].append(wal_bytes(db))
        engine.dispose()
    one = sizes["job"][0]
    assert one > 1000 * PAGE
    assert max(sizes["job"]) <= 1.2 * one, sizes["job"]
    assert sizes["none"][-1] >= 7 * one, sizes["none"]


def test_the_scheduler_runs_the_checkpoint_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(curtainwatch.runtime, "CHECKPOINT_INTERVAL_S", 0.2)
    db = tmp_path / "cw.db"
    rt = Runtime(Settings(database_url=f"sqlite:///{db}"), SimulatedClock(NOW))
    write_big(rt.db, "scheduled")
    assert rows_in_database_file(db, tmp_path) == 0
    rt.start(ingest=False, schedule=True)
    try:
        assert rt.scheduler is not None and rt.scheduler.get_job("checkpoint") is not None
        deadline = time.monotonic() + 60
        while (rt.last_checkpoint is None or rt.last_checkpoint[2] < BIG) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert rt.last_checkpoint is not None, "the checkpoint job never ran"
        # The other jobs may have written a little since: only the big write is certain.
        assert rt.last_checkpoint[2] >= BIG
        assert rows_in_database_file(db, tmp_path) == BIG
    finally:
        rt.stop()
