"""The `curtainwatch` command: serve, import, replay, record, db upgrade."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from curtainwatch.logs import setup_logging
from monitor.clock import SimulatedClock, SystemClock
from monitor.config import Settings
from monitor.db import upgrade
from monitor.importing.community import CommunityError

if TYPE_CHECKING:
    pass

log = logging.getLogger("curtainwatch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="curtainwatch", description=__doc__)
    parser.add_argument("--database", help="database URL (default: $CURTAINWATCH_DATABASE_URL)")
    parser.add_argument("--config", type=Path, help="TOML settings file ($CURTAINWATCH_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run ingestion, the scheduler and the web app until stopped")
    p.add_argument(
        "--only",
        choices=["ingest", "schedule", "web"],
        action="append",
        help="run only this part (repeatable); default: all three",
    )
    p = sub.add_parser("import", help="load a community file (YAML)")
    p.add_argument("file", type=Path)
    p = sub.add_parser("replay", help="run recorded events through the engine, write alerts")
    p.add_argument("--community", type=Path, required=True)
    p.add_argument("--events", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--from", dest="start", type=_timestamp)
    p.add_argument("--until", type=_timestamp)
    p = sub.add_parser("record", help="capture live MQTT traffic as an event file")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--timezone", default="UTC", help="zone for the written timestamps")
    p = sub.add_parser("invite", help="make a family invitation link for a resident")
    p.add_argument("--resident", required=True)
    p.add_argument("--by", default="staff", help="who is inviting (kept with the invitation)")
    p = sub.add_parser("silence", help="hold notifications for a building or a resident")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--building")
    target.add_argument("--resident")
    p.add_argument("--until", type=_timestamp, required=True)
    p.add_argument("--from", dest="start", type=_timestamp, help="default: now")
    p.add_argument("--reason", default="")
    p.add_argument("--by", default="staff")
    p = sub.add_parser("user", help="web users: add one, or make an API token")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    u = user_sub.add_parser("add", help="create a web user (the first admin, say)")
    u.add_argument("username")
    u.add_argument("--role", choices=["admin", "staff", "volunteer", "family"], default="admin")
    u.add_argument("--person", help="their id in the community file (volunteers, family)")
    u.add_argument("--name", default="", help="shown in the dashboard (default: the person's)")
    u.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    u = user_sub.add_parser("token", help="make a new API token for a user (shown once)")
    u.add_argument("username")
    p = sub.add_parser("demo", help="the whole system with simulated sensors, on one machine")
    p.add_argument("--speed", type=float, default=10.0, help="real minutes per simulated day")
    p.add_argument("--port", type=int, default=8000, help="web app port (taken: any free one)")
    p.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (0: any)")
    p.add_argument("--db", type=Path, default=Path("demo.db"), help="recreated at every start")
    p.add_argument("--start", type=_timestamp, help="simulated start (default: today 05:30)")
    p.add_argument("--seed", type=int, default=2026, help="the simulator's random seed")
    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"])

    args = parser.parse_args(argv)
    try:
        settings = Settings.load(path=args.config)
    except (OSError, ValueError) as exc:
        print(f"curtainwatch: settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, logging.DEBUG if args.verbose else logging.INFO)
    if args.database:
        settings = replace(settings, database_url=args.database)
    try:
        return COMMANDS[args.command](settings, args)
    except CommunityError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"curtainwatch {args.command}: {exc}", file=sys.stderr)
        return 2


def _timestamp(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a UTC offset, like 2026-11-23T07:00+08:00"
        )
    return ts


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    upgrade(settings.database_url)
    print(f"database at {settings.database_url} is up to date")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from curtainwatch.runtime import Runtime

    try:
        actor = f"cli:{getpass.getuser()}"  # as the web audits "user:<name>"
    except (KeyError, OSError, ImportError):  # no name for this uid, as in a bare container
        actor = "cli"
    runtime = Runtime(settings)
    counts = runtime.import_community(
        args.file.read_text(encoding="utf-8"), actor=actor, filename=args.file.name
    )
    runtime.db.dispose()
    print("imported " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from curtainwatch.serve import serve

    return serve(settings, set(args.only or ("ingest", "schedule", "web")))


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.lifecycle import Raised
    from curtainwatch.runtime import Runtime
    from monitor.models import Resident
    from sensors.replay import Replay, time_span

    first, last = time_span(args.events)
    start, until = args.start or first, args.until or last
    raised: list[Raised] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = settings.database_url if args.database else f"sqlite:///{tmp}/replay.db"
        clock = SimulatedClock(start)
        runtime = Runtime(replace(settings, database_url=db), clock, on_raised=raised.append)
        runtime.import_community(args.community.read_text(encoding="utf-8"))
        with runtime.sessions() as session:
            zones = {r.id: ZoneInfo(r.timezone) for r in session.scalars(select(Resident))}
        replay = Replay(runtime.ingestor, runtime.engine, clock)
        result = replay.run(args.events, until)
        stats = runtime.ingestor.stats
        runtime.db.dispose()
    with args.out.open("w", encoding="utf-8") as out:
        for r in raised:
            out.write(json.dumps(alert_line(r, zones[r.finding.resident_id])) + "\n")
    print(
        f"replayed {result.lines} lines ({result.bad_lines} bad) from {start.isoformat()} "
        f"to {until.isoformat()}: {stats.events} events, {stats.dead_letters} dead letters, "
        f"{stats.unknown} unknown devices, {len(raised)} alerts -> {args.out}"
    )
    return 0


def alert_line(r: object, tz: ZoneInfo) -> dict[str, object]:
    """One line of replay's alert output (docs/contracts.md, "Replay's alert output")."""
    from alerts.lifecycle import Raised

    assert isinstance(r, Raised)
    f = r.finding
    line: dict[str, object] = {
        "resident": f.resident_id,
        "kind": f.kind,
        "routine": f.routine_kind,
        "due": f.due.astimezone(tz).isoformat() if f.due else None,
        "raised": f.at.astimezone(tz).isoformat(),
        "severity": r.severity,
    }
    if f.device_id:
        line["device"] = f.device_id
    if r.repeats:
        line["repeat"] = r.repeats
    return line


def cmd_record(settings: Settings, args: argparse.Namespace) -> int:
    from sensors.recorder import Recorder, open_out

    with open_out(args.out) as out:
        recorder = Recorder(settings, SystemClock(), out, ZoneInfo(args.timezone), args.count)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: recorder.done.set())
        n = recorder.run(args.duration)
    print(f"recorded {n} messages to {args.out}")
    return 0


def cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.family import invite
    from curtainwatch.runtime import Runtime

    runtime = Runtime(settings)
    with runtime.sessions.begin() as session:
        # Signed with the configured key when there is one, as the web app checks it.
        token = invite(
            session, args.resident, args.by, runtime.clock.now(), key=settings.secret_key or None
        )
    runtime.db.dispose()
    print(f"{settings.base_url.rstrip('/')}/family/invite/{token}")
    print("Send this link to the family member; it works once, for 7 days.")
    return 0


def cmd_silence(settings: Settings, args: argparse.Namespace) -> int:
    from curtainwatch.runtime import Runtime
    from monitor.models import Resident, Silence

    runtime = Runtime(settings)
    now = runtime.clock.now()
    start = args.start or now
    if args.until <= start:
        raise ValueError(f"--until {args.until.isoformat()} is not after {start.isoformat()}")
    with runtime.sessions.begin() as session:
        if args.resident and session.get(Resident, args.resident) is None:
            raise ValueError(f"there is no resident {args.resident!r}")
        session.add(
            Silence(
                building=args.building,
                resident_id=args.resident,
                starts_at=start,
                ends_at=args.until,
                reason=args.reason,
                created_by=args.by,
                created_at=now,
            )
        )
    runtime.db.dispose()
    what = f"building {args.building}" if args.building else f"resident {args.resident}"
    print(f"silenced {what} until {args.until.isoformat()} (help cards still go through)")
    return 0


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from curtainwatch.runtime import Runtime
    from monitor.admin.users import UserError, create_user, new_api_token
    from monitor.models import User

    runtime = Runtime(settings)
    try:
        with runtime.sessions.begin() as session:
            if args.user_command == "token":
                user = session.scalar(select(User).where(User.username == args.username))
                if user is None:
                    raise UserError(f"there is no user {args.username!r}")
                print(new_api_token(user))
                print("Keep this token secret; it replaces any earlier one.", file=sys.stderr)
                return 0
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass("password: ")
                if getpass.getpass("again: ") != password:
                    raise UserError("the two passwords differ")
            create_user(
                session,
                args.username,
                password,
                args.role,
                runtime.clock.now(),
                person_id=args.person,
                display_name=args.name,
            )
    except UserError as exc:
        print(f"curtainwatch user: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.db.dispose()
    print(f"created {args.role} {args.username!r}; sign in at {settings.base_url}/login")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from curtainwatch.demo import DemoOptions, run_demo

    if not args.speed > 0:
        raise ValueError(f"--speed must be above 0 minutes per day, not {args.speed:g}")
    options = DemoOptions(args.speed, args.port, args.mqtt_port, args.db, args.start, args.seed)
    return run_demo(settings, options)


COMMANDS = {
    "serve": cmd_serve,
    "import": cmd_import,
    "replay": cmd_replay,
    "record": cmd_record,
    "invite": cmd_invite,
    "silence": cmd_silence,
    "user": cmd_user,
    "demo": cmd_demo,
    "db": cmd_db,
}

if __name__ == "__main__":
    sys.exit(main())
