"""Test helpers for the authorization matrix (tests/test_authz_matrix.py): the cast, every
user signed in on a runtime of the shared world (tests/support/world.py) with something in
every list, put there through the real paths (the ingestor, the engine, the dashboard's own
forms), and the ids a matrix row's URL needs, for a resident in the user's scope and one
outside it; a snapshot of every table, to prove that a refused request changed nothing; and
what each user must never read.

    cast = build_cast(db_url)
    client = cast.client("vol5")               # signed in (anonymous: not signed in)
    before = snapshot(cast.rt)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from alerts.family import invite, opt_out_token
from alerts.tokens import make_link_token
from curtainwatch.runtime import Runtime
from monitor.admin.users import new_api_token
from monitor.importing.spreadsheet.uploads import find_upload, keep_upload, plan_upload
from monitor.models import Alert, AwayPeriod, Base, Routine, User
from support.web import post_form, signed_in, web_app
from support.world import USERS, World, advance, feed

ANONYMOUS = "anonymous"
ALL_USERS = (ANONYMOUS, *USERS)  # anonymous, admin, staff, vol3, vol5, fam301, fam501

ROLE_OF = {ANONYMOUS: ANONYMOUS, **{name: role for name, (role, _person) in USERS.items()}}

NAMES = {"r-301": "Wang Shulan", "r-302": "Zhao Guiying", "r-501": "Sun Lihua"}
BUILDING = {"r-301": "3", "r-302": "3", "r-501": "5"}
# r-301's contact block: for the people who knock, not for family (web/residents.py).
CONTACT_301 = ("138 0000 0301", "139 0000 1111", "Hard of hearing")

# Who may see which residents (monitor.access): the expected content of every list.
SEES: dict[str, frozenset[str]] = {
    "admin": frozenset(NAMES),
    "staff": frozenset(NAMES),
    "vol3": frozenset({"r-301", "r-302"}),
    "vol5": frozenset({"r-501"}),
    "fam301": frozenset({"r-301"}),
    "fam501": frozenset({"r-501"}),
}

VISIBLE = {**SEES, ANONYMOUS: frozenset[str]()}

# The resident a matrix row's ids point at: (in the user's scope, outside it). The outside
# one is a neighbour in another building for a volunteer, another resident for family
# (fam301's is r-302, in the same building as their relative).
TARGETS: dict[str, tuple[str, str | None]] = {
    ANONYMOUS: ("r-301", None),
    "admin": ("r-301", None),
    "staff": ("r-301", None),
    "vol3": ("r-301", "r-501"),
    "vol5": ("r-501", "r-301"),
    "fam301": ("r-301", "r-302"),
    "fam501": ("r-501", "r-301"),
}

UNKNOWN_DEVICE = "mystery-9"
SHEET = "id,name,building,unit\nr-901,Qian Lan,9,901\n"

# Notes written in the setup: they name the resident, so they must show only where the
# resident does.
NOTES = {
    "r-301": "Wang Shulan's son says she is at the clinic.",
    "r-302": "Zhao Guiying was at the market.",
    "r-501": "Sun Lihua's neighbour checked.",
}


@dataclass
class Cast:
    """The users of the matrix with their browsers and API tokens, on a runtime and app with
    data in every list, and the ids the matrix needs."""

    rt: Runtime
    app: Flask
    api_tokens: dict[str, str]  # username -> bearer token for /api/v1
    user_ids: dict[str, int]
    help_alert: dict[str, int]  # resident -> its help-card alert
    missed_alert: dict[str, int]  # resident -> its missed curtain_open alert
    routine: dict[str, int]  # resident -> its curtain_open routine
    away: dict[str, int]  # resident -> one of its away periods
    uploads: dict[str, str]  # "confirm" / "discard" -> an admin's kept upload key
    links: dict[str, str]  # "phone" / "invite" / "stop" -> a genuine link token
    clients: dict[str, FlaskClient] = field(default_factory=dict)

    def client(self, user: str) -> FlaskClient:
        """The user's browser: signed in through the real form (anonymous: a fresh one)."""
        if user not in self.clients:
            self.clients[user] = (
                self.app.test_client() if user == ANONYMOUS else signed_in(self.app, user)
            )
        return self.clients[user]

    def ids(self, user: str, resident: str) -> dict[str, Any]:
        """The values a matrix row's URL and form may use, pointing at `resident`."""
        elsewhere = "r-301" if BUILDING[resident] == "5" else "r-501"
        return {
            "resident": resident,
            "name": NAMES[resident],
            "building": BUILDING[resident],
            "unit": resident[2:],
            "elsewhere": elsewhere,
            "alert": self.help_alert[resident],
            "missed": self.missed_alert[resident],
            "routine": self.routine[resident],
            "away": self.away[resident],
            "curtain": f"curtain-{resident[2:]}",
            "card": f"card-{resident[2:]}",
            "staff_user": self.user_ids["staff"],
            "me": user if user != ANONYMOUS else "vol3",
            "upload": self.uploads["confirm"],
            "upload2": self.uploads["discard"],
        }

    def link_ids(self) -> dict[str, str]:
        """The genuine link tokens, as a matrix row's URL names them."""
        return {f"{name}_link": token for name, token in self.links.items()}

    def plan_digest(self, key: str) -> str:
        """The digest the preview page would show for the upload (as the form sends it)."""
        with self.rt.sessions() as s:
            found = find_upload(s, key, self.user_ids["admin"], self.rt.clock.now())
            return plan_upload(s, found).digest() if found is not None else ""


def build_cast(db_url: str, **settings: Any) -> Cast:
    """The fixture community on 2026-11-23 at 09:30, with:

    - help cards flipped for r-301, r-302 and r-501 (07:40-07:42) and their curtains alive
      but shut, so each has an open help alert and a missed curtain_open alert (09:15);
    - r-302's help alert resolved and a note on every help alert, by staff through the
      alerts pages (so the history, the CSV and the audit log have rows);
    - away periods for r-301 and r-302 added by staff through the resident page;
    - a dead letter and an unknown device from the ingestor;
    - an API token for every user, two uploads kept for the admin, and genuine link tokens
      (a volunteer's phone link, a family invitation, a family stop link).

    `settings` are passed on to the runtime's Settings."""
    rt = World(settings=settings).runtime(db_url)
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:20")
    for unit in ("301", "302", "501"):
        feed(rt, f"zigbee2mqtt/curtain-{unit}", {"position": 0, "battery": 90}, "06:30")
    feed(rt, "zigbee2mqtt/card-301", {"action": "single"}, "07:40")
    feed(rt, "zigbee2mqtt/card-302", {"action": "single"}, "07:41")
    feed(rt, "zigbee2mqtt/card-501", {"action": "single"}, "07:42")
    feed(rt, "zigbee2mqtt/door-501", {"contact": False}, "08:10")
    feed(rt, f"zigbee2mqtt/{UNKNOWN_DEVICE}", {"occupancy": True}, "08:20")
    feed(rt, "zigbee2mqtt/light-301", b"{not json", "08:30")  # a dead letter
    advance(rt, "09:30")

    with rt.sessions() as s:
        alerts = s.execute(select(Alert.id, Alert.resident_id, Alert.kind)).all()
        help_alert = {r: i for i, r, k in alerts if r and k == "help"}
        missed_alert = {r: i for i, r, k in alerts if r and k == "missed_routine"}
        routine = {
            r: i
            for i, r in s.execute(
                select(Routine.id, Routine.resident_id).where(Routine.kind == "curtain_open")
            )
        }
    assert set(help_alert) == set(missed_alert) == set(NAMES), alerts

    app = web_app(rt)
    staff = signed_in(app, "staff")
    for resident, days in (
        ("r-301", ("2026-12-01", "2026-12-07")),
        ("r-302", ("2026-12-02", "2026-12-03")),
    ):
        resp = post_form(
            staff,
            f"/residents/{resident}/away",
            {"first_day": days[0], "last_day": days[1]},
            form_page=f"/residents/{resident}",
        )
        assert resp.status_code == 302, resp.status_code
    for resident, alert_id in help_alert.items():
        note = post_form(
            staff, f"/alerts/{alert_id}/note", {"text": NOTES[resident]}, f"/alerts/{alert_id}"
        )
        assert note.status_code == 303, note.status_code
    resp = post_form(
        staff,
        f"/alerts/{help_alert['r-302']}/resolve",
        {"outcome": "fine", "note": NOTES["r-302"]},
        f"/alerts/{help_alert['r-302']}",
    )
    assert resp.status_code == 303, resp.status_code

    now = rt.clock.now()
    key = app.config["LINK_KEY"]
    with rt.sessions.begin() as s:
        users = list(s.scalars(select(User)))
        api_tokens = {u.username: new_api_token(u) for u in users}
        s.flush()
        user_ids = {u.username: u.id for u in users}
        away = {r: i for i, r in s.execute(select(AwayPeriod.id, AwayPeriod.resident_id))}
        uploads = {
            purpose: keep_upload(
                s, user_ids["admin"], "residents.csv", "sheet", SHEET.encode(), now
            )
            for purpose in ("confirm", "discard")
        }
        links = {
            "phone": make_link_token(key, "v-li", help_alert["r-301"], now),
            "invite": invite(s, "r-301", "s-chen", now, key=key),
            "stop": opt_out_token(key, "f-wang"),
        }
    assert set(away) == set(NAMES), away
    cast = Cast(
        rt, app, api_tokens, user_ids, help_alert, missed_alert, routine, away, uploads, links
    )
    cast.clients["staff"] = staff  # signed in already (argon2 makes each sign-in cost)
    return cast


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with rt.sessions() as s:
        return {
            table.name: [
                tuple(row) for row in s.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def changed_tables(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


def _word(text: str) -> str:
    """`text` as a whole token: r-301 but not the r-301 inside door-301."""
    return rf"(?<![\w-]){re.escape(text)}(?![\w-])"


def forbidden(user: str) -> list[re.Pattern[str]]:
    """What `user` must never read outside a link page: the names, ids, device ids and notes
    of residents out of their scope (anonymous: of everyone), their buildings, and the
    contact block of r-301 unless the user is one who knocks (staff, building 3's
    volunteer)."""
    sees = VISIBLE[user]
    patterns: list[str] = []
    for resident in sorted(set(NAMES) - sees):
        unit = resident[2:]
        patterns += [
            re.escape(NAMES[resident]),
            _word(resident),
            *(_word(f"{kind}-{unit}") for kind in ("curtain", "door", "light", "card")),
            re.escape(NOTES[resident]),
        ]
    for building in sorted(set(BUILDING.values()) - {BUILDING[r] for r in sees}):
        patterns.append(rf"Building {building}\b")
    if ROLE_OF[user] in ("family", ANONYMOUS) or "r-301" not in sees:
        patterns += [re.escape(text) for text in CONTACT_301]
    return [re.compile(p) for p in patterns]


def foreign_names(user: str) -> list[str]:
    """The names of residents out of `user`'s scope (a refusal page must not show them)."""
    return [NAMES[r] for r in sorted(set(NAMES) - VISIBLE[user])]
