"""`make test`'s preflight: stop before pytest when the machine lacks something the suite
needs from outside Python, naming each missing piece and the command that installs it.

    .venv/bin/python tests/support/preflight.py sqlite postgresql   # the passes to run

Without the preflight, a machine with no Mosquitto, PostgreSQL or Chromium would run the
suite with most of it skipped and look green. The lookups are the fixtures' own
(support.requirements), so the two cannot disagree.

Escape hatch: ``--allow-missing`` (``make test ALLOW_MISSING=1``) reports what is missing
and lets pytest run anyway; the tests that need a missing piece then skip, each saying why
(under ``CI=true`` they fail instead, as always).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as pytest sees it

from support.requirements import EXTERNALS, in_ci, missing  # noqa: E402

PASSES = ("sqlite", "postgresql")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check what `make test` needs.")
    parser.add_argument("passes", nargs="+", choices=PASSES, help="the passes about to run")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="report what is missing but exit 0 (its tests skip, or fail under CI=true)",
    )
    args = parser.parse_args(argv)

    lacking = missing(args.passes)
    if not lacking:
        needed = [ext for ext in EXTERNALS if set(ext.passes) & set(args.passes)]
        found = ", ".join(f"{ext.find()}" for ext in needed)
        print(f"preflight ({' + '.join(args.passes)}): found {found}")
        return 0

    if args.allow_missing:
        outcome = "fail (CI=true)" if in_ci() else "skip, each saying why"
        say(f"preflight: ALLOW_MISSING is set: running anyway; the tests needing these {outcome}")
    else:
        say("preflight: stopping before pytest (to run anyway, without these: ALLOW_MISSING=1)")
    for ext in lacking:
        say(f"preflight: {ext.problem}: {ext.install}")
    if args.allow_missing:
        return 0
    everything = " ".join(ext.packages for ext in lacking)
    say(f"preflight: install everything missing: sudo apt-get install {everything}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
