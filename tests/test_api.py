"""The JSON API (issue 4, point 7) over the shared web fixture community and a real database:
bearer tokens only (never the session cookie), the same scope per role as the pages,
claim/resolve with 409 when someone got there first, precise 400s for bad bodies, cursor
pagination, UTC times, and a constant number of statements per list."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, insert, select
from support.web import signed_in
from support.world import advance, at, feed
from werkzeug.test import TestResponse

from alerts.tokens import NOTE_MAX, OUTCOMES
from curtainwatch.runtime import Runtime
from monitor.admin.users import new_api_token
from monitor.models import Alert, AuditEntry, Event, User, table


@dataclass
class Api:
    rt: Runtime
    app: Flask
    client: FlaskClient
    tokens: dict[str, str]

    def get(self, path: str, user: str, **query: Any) -> TestResponse:
        return self.client.get("/api/v1" + path, query_string=query, headers=self.auth(user))

    def post(self, path: str, user: str, body: Any = None, data: str | None = None) -> TestResponse:
        if data is not None:
            return self.client.post("/api/v1" + path, data=data, headers=self.auth(user))
        return self.client.post("/api/v1" + path, json=body, headers=self.auth(user))

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def alert_id(self, resident: str, kind: str) -> int:
        with self.rt.sessions() as s:
            found = s.scalar(select(Alert.id).filter_by(resident_id=resident, kind=kind))
        assert found is not None, (resident, kind)
        return found


@pytest.fixture
def api(rt: Runtime, app: Flask) -> Iterator[Api]:
    """The fixture community on 2026-11-23: help cards flipped for r-301 (07:40) and r-501
    (07:41), r-301's curtain opened at 07:45, r-302's curtain alive but shut (a missed
    window at 09:15); the clock at 09:20 after settling. Every user has an API token."""
    feed(rt, "zigbee2mqtt/curtain-302", {"position": 0, "battery": 90}, "06:30")
    feed(rt, "zigbee2mqtt/card-301", {"action": "single"}, "07:40")
    feed(rt, "zigbee2mqtt/card-501", {"action": "single"}, "07:41")
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:45")
    feed(rt, "zigbee2mqtt/door-501", {"contact": False}, "08:10")
    advance(rt, "09:20")
    with rt.sessions.begin() as s:
        tokens = {u.username: new_api_token(u) for u in s.scalars(select(User))}
    yield Api(rt, app, app.test_client(), tokens)
    rt.stop()


def residents_of(resp: TestResponse, key: str = "resident") -> set[str]:
    return {item[key] for item in resp.get_json()[list(resp.get_json())[0]]}


# -- authentication --------------------------------------------------------------------------


def test_no_token_or_a_bad_one_is_401_with_a_bearer_challenge(api: Api) -> None:
    resp = api.client.get("/api/v1/residents")
    assert resp.status_code == 401
    assert resp.get_json()["error"].startswith("an API token is required")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="curtainwatch"'

    for header in ("Bearer cw_not-a-real-token", "Bearer nonsense", "Bearer " + "x" * 300):
        resp = api.client.get("/api/v1/residents", headers={"Authorization": header})
        assert resp.status_code == 401
        assert resp.get_json() == {"error": "the API token is not valid", "reason": "invalid_token"}
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    # The right token under another scheme is still no bearer token.
    resp = api.client.get(
        "/api/v1/residents", headers={"Authorization": "Basic " + api.tokens["staff"]}
    )
    assert resp.status_code == 401


def test_a_replaced_or_deactivated_token_stops_working(api: Api) -> None:
    old = api.tokens["vol3"]
    with api.rt.sessions.begin() as s:
        user = s.scalars(select(User).filter_by(username="vol3")).one()
        new = new_api_token(user)
    headers = {"Authorization": f"Bearer {old}"}
    assert api.client.get("/api/v1/residents", headers=headers).status_code == 401
    headers = {"Authorization": f"Bearer {new}"}
    assert api.client.get("/api/v1/residents", headers=headers).status_code == 200
    with api.rt.sessions.begin() as s:
        s.scalars(select(User).filter_by(username="vol3")).one().active = False
    assert api.client.get("/api/v1/residents", headers=headers).status_code == 401


def test_the_dashboard_session_cookie_does_not_open_the_api(api: Api) -> None:
    browser = signed_in(api.app, "staff")  # a real sign-in: the session cookie is set
    assert browser.get("/api/v1/alerts").status_code == 401
    alert_id = api.alert_id("r-301", "help")
    # A cross-site form could make a signed-in browser POST here; it must not act.
    resp = browser.post(f"/api/v1/alerts/{alert_id}/claim")
    assert resp.status_code == 401
    resp = browser.post(f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "fine"})
    assert resp.status_code == 401
    with api.rt.sessions() as s:
        assert s.get(Alert, alert_id).status == "open"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0


# -- what each role sees ---------------------------------------------------------------------


def test_residents_per_role(api: Api) -> None:
    ids = {
        u: [r["id"] for r in api.get("/residents", u).get_json()["residents"]]
        for u in ("admin", "staff", "vol3", "vol5", "fam301", "fam501")
    }
    assert ids == {
        "admin": ["r-301", "r-302", "r-501"],
        "staff": ["r-301", "r-302", "r-501"],
        "vol3": ["r-301", "r-302"],
        "vol5": ["r-501"],
        "fam301": ["r-301"],
        "fam501": ["r-501"],
    }
    [wang] = api.get("/residents", "fam301").get_json()["residents"]
    assert wang == {
        "id": "r-301",
        "name": "Wang Shulan",
        "building": "3",
        "unit": "301",
        "timezone": "Asia/Shanghai",
        "active": True,
    }
    assert api.get("/residents", "staff", building="5").get_json()["residents"][0]["id"] == "r-501"
    assert api.get("/residents", "vol5", building="3").get_json()["residents"] == []


def test_one_resident_with_devices_and_routines_and_403_outside_scope(api: Api) -> None:
    body = api.get("/residents/r-301", "vol3").get_json()
    assert body["name"] == "Wang Shulan"
    assert [d["id"] for d in body["devices"]] == [
        "card-301",
        "curtain-301",
        "door-301",
        "light-301",
    ]
    curtain = next(d for d in body["devices"] if d["id"] == "curtain-301")
    assert curtain["state"] == "open"
    assert curtain["last_seen"] == at("07:45").astimezone(UTC).isoformat()
    assert curtain["online"] is True
    assert [r["kind"] for r in body["routines"]][:2] == ["curtain_open", "curtain_close"]
    opening = body["routines"][0]
    assert (opening["start"], opening["end"], opening["grace_s"]) == ("07:00", "09:00", 900)
    # Tomorrow's window: settled today at 09:15, due again tomorrow 09:15 Shanghai time.
    assert opening["next_due_at"] == "2026-11-24T01:15:00+00:00"
    assert api.get("/residents/r-501", "fam501").get_json()["away"] == [
        {"from": "2026-12-20", "to": "2026-12-27"}
    ]

    for user, other in (("vol5", "r-301"), ("fam301", "r-302"), ("fam301", "nobody")):
        resp = api.get(f"/residents/{other}", user)
        assert resp.status_code == 403, (user, other)
        assert "not one you may see" in resp.get_json()["error"]
    assert api.get("/residents/nobody", "staff").status_code == 404


def test_devices_per_role_and_by_status(api: Api) -> None:
    def ids(user: str, **query: str) -> list[str]:
        resp = api.get("/devices", user, **query)
        assert resp.status_code == 200, resp.get_json()
        return [d["id"] for d in resp.get_json()["devices"]]

    assert ids("vol5") == ["card-501", "curtain-501", "door-501"]
    assert ids("fam301") == ["card-301", "curtain-301", "door-301", "light-301"]
    assert len(ids("staff")) == 9
    assert not set(ids("vol5")) & set(ids("vol3"))

    feed(api.rt, "zigbee2mqtt/door-301/availability", {"state": "offline"}, "09:21")
    feed(api.rt, "zigbee2mqtt/curtain-501", {"battery": 9}, "09:22")
    assert ids("staff", status="offline") == ["door-301"]
    assert ids("vol5", status="offline") == []
    assert ids("staff", status="low_battery") == ["curtain-501"]
    assert ids("vol3", status="low_battery") == []
    [door] = api.get("/devices", "vol3", status="offline").get_json()["devices"]
    assert (door["online"], door["resident"], door["building"]) == (False, "r-301", "3")
    [light] = [
        d for d in api.get("/devices", "vol3").get_json()["devices"] if d["id"] == "light-301"
    ]
    assert light["online"] is None and light["last_seen"] is None  # never heard from yet

    resp = api.get("/devices", "staff", status="broken")
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": "unknown status 'broken'",
        "field": "status",
        "allowed": ["offline", "low_battery"],
    }


def test_alerts_per_role(api: Api) -> None:
    def seen(user: str, **query: str) -> list[tuple[str, str]]:
        resp = api.get("/alerts", user, **query)
        assert resp.status_code == 200, resp.get_json()
        return [(a["resident"], a["kind"]) for a in resp.get_json()["alerts"]]

    # Newest first: the missed window (raised when settled, 09:20), then the help cards
    # (07:41, 07:40).
    assert seen("staff") == [
        ("r-302", "missed_routine"),
        ("r-501", "help"),
        ("r-301", "help"),
    ]
    assert seen("vol3") == [("r-302", "missed_routine"), ("r-301", "help")]
    assert seen("vol5") == [("r-501", "help")]
    assert seen("fam301") == [("r-301", "help")]
    assert seen("staff", kind="help", resident="r-501") == [("r-501", "help")]
    assert seen("staff", status="resolved") == []
    assert seen("staff", since="2026-11-23T09:00:00+08:00") == [("r-302", "missed_routine")]
    assert seen("staff", since="2026-11-23T09:00") == [("r-302", "missed_routine")]  # local
    assert seen("staff", until="2026-11-22T23:40:30Z") == [("r-301", "help")]

    [missed] = api.get("/alerts", "vol3", kind="missed_routine").get_json()["alerts"]
    assert (missed["routine"], missed["severity"], missed["status"]) == (
        "curtain_open",
        "warning",
        "open",
    )
    assert (missed["resident_name"], missed["building"], missed["unit"]) == (
        "Zhao Guiying",
        "3",
        "302",
    )
    # Times are UTC with an explicit offset.
    assert missed["due_at"] == "2026-11-23T01:15:00+00:00"
    assert missed["raised_at"] == at("09:20").astimezone(UTC).isoformat()  # settled

    one = api.get(f"/alerts/{missed['id']}", "vol3").get_json()
    assert one["id"] == missed["id"] and one["notes"] == []
    help_301 = api.alert_id("r-301", "help")
    for user in ("vol5", "fam501"):
        resp = api.get(f"/alerts/{help_301}", user)
        assert resp.status_code == 403
        assert resp.get_json()["error"] == f"alert {help_301} is not one you may see"
    assert api.get("/alerts/99999", "vol3").status_code == 403  # no probing of ids
    assert api.get("/alerts/99999", "staff").status_code == 404

    for query, field in (({"status": "done"}, "status"), ({"kind": "fire"}, "kind")):
        resp = api.get("/alerts", "staff", **query)
        assert resp.status_code == 400 and resp.get_json()["field"] == field
    resp = api.get("/alerts", "staff", since="yesterday")
    assert resp.status_code == 400
    assert resp.get_json()["error"].startswith("since is not an ISO 8601 time: 'yesterday'")


def test_events_per_role(api: Api) -> None:
    def events(user: str, **query: str) -> list[tuple[str, str, str]]:
        resp = api.get("/events", user, **query)
        assert resp.status_code == 200, resp.get_json()
        return [(e["resident"], e["device"], e["value"]) for e in resp.get_json()["events"]]

    assert events("fam301", resident="r-301") == [
        ("r-301", "curtain-301", "open"),
        ("r-301", "card-301", "help"),
    ]
    assert events("vol5", resident="r-501") == [
        ("r-501", "door-501", "open"),
        ("r-501", "card-501", "help"),
    ]
    assert {r for r, _, _ in events("staff")} == {"r-301", "r-302", "r-501"}
    assert events("staff", resident="r-301", since="2026-11-22T23:42:00+00:00") == [
        ("r-301", "curtain-301", "open")
    ]
    assert events("staff", resident="r-301", until="2026-11-23T07:42:00+08:00") == [
        ("r-301", "card-301", "help")
    ]
    [e] = api.get("/events", "staff", resident="r-301", limit="1").get_json()["events"]
    assert e["ts"] == "2026-11-22T23:45:00+00:00" and e["kind"] == "curtain"

    for user, resident in (("vol5", "r-301"), ("fam301", "r-302"), ("fam501", "r-301")):
        resp = api.get("/events", user, resident=resident)
        assert resp.status_code == 403, (user, resident)
    resp = api.get("/events", "vol3")
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": "resident is required (events?resident=<id>)",
        "field": "resident",
    }
    for limit in ("0", "1001", "many"):
        resp = api.get("/events", "staff", limit=limit)
        assert resp.status_code == 400
        assert resp.get_json()["error"] == "limit must be a whole number from 1 to 1000"
    assert api.get("/events", "staff", limit="1000").status_code == 200


# -- claim and resolve ------------------------------------------------------------------------


def test_claim_then_resolve_with_conflicts_and_audit(api: Api) -> None:
    alert_id = api.alert_id("r-301", "help")
    advance(api.rt, "09:30", jobs=())
    resp = api.post(f"/alerts/{alert_id}/claim", "vol3")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["status"], body["claimed_by"], body["claimed_by_name"]) == (
        "claimed",
        "v-li",
        "Li Ming",
    )
    assert body["claimed_at"] == "2026-11-23T01:30:00+00:00"
    # Tapping twice is harmless; anyone else is told who is going.
    assert api.post(f"/alerts/{alert_id}/claim", "vol3").status_code == 200
    resp = api.post(f"/alerts/{alert_id}/claim", "staff")
    assert resp.status_code == 409
    assert resp.get_json() == {
        "error": "someone else has claimed the alert",
        "status": "claimed",
        "claimed_by": "v-li",
        "claimed_at": "2026-11-23T01:30:00+00:00",
    }
    with api.rt.sessions() as s:
        reminder = s.scalar(select(Alert.next_escalation_at).filter_by(id=alert_id))
        assert reminder == at("10:30")  # the claim timeout (1 h) later: the reminder

    advance(api.rt, "09:55", jobs=())
    resp = api.post(f"/alerts/{alert_id}/resolve", "vol3", {"outcome": "fine", "note": " ok "})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["status"], body["outcome"], body["note"], body["resolved_by"]) == (
        "resolved",
        "fine",
        "ok",
        "v-li",
    )
    assert body["resolved_at"] == "2026-11-23T01:55:00+00:00"

    resp = api.post(f"/alerts/{alert_id}/resolve", "staff", {"outcome": "needed_help"})
    assert resp.status_code == 409
    assert resp.get_json()["error"] == "the alert is already resolved"
    assert resp.get_json()["resolved_by"] == "v-li"
    assert api.post(f"/alerts/{alert_id}/claim", "vol3").status_code == 409

    with api.rt.sessions() as s:
        audit = [
            (a.actor, a.action, a.target, a.detail, a.at)
            for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert audit == [
        (
            "v-li",
            "alert.claim",
            f"alert:{alert_id}",
            "claimed through the API",
            at("09:30"),
        ),
        (
            "v-li",
            "alert.resolve",
            f"alert:{alert_id}",
            "resolved through the API: fine",
            at("09:55"),
        ),
    ]


def test_a_volunteer_cannot_close_a_claim_of_someone_else_but_staff_can(api: Api) -> None:
    missed = api.alert_id("r-302", "missed_routine")
    assert api.post(f"/alerts/{missed}/claim", "staff").status_code == 200
    resp = api.post(f"/alerts/{missed}/resolve", "vol3", {"outcome": "fine"})
    assert resp.status_code == 409 and resp.get_json()["claimed_by"] == "s-chen"
    # An open alert may be closed by any responder in scope; admin acts as "user:admin".
    help_501 = api.alert_id("r-501", "help")
    resp = api.post(f"/alerts/{help_501}/resolve", "admin", {"outcome": "false_alarm_away"})
    assert resp.status_code == 200 and resp.get_json()["resolved_by"] == "user:admin"


def test_family_and_volunteers_outside_their_buildings_get_403(api: Api) -> None:
    help_301 = api.alert_id("r-301", "help")
    for user in ("fam301", "fam501"):
        resp = api.post(f"/alerts/{help_301}/claim", user)
        assert resp.status_code == 403
        assert resp.get_json()["error"] == (
            "a family user may see alerts but not claim or resolve them"
        )
        resp = api.post(f"/alerts/{help_301}/resolve", user, {"outcome": "fine"})
        assert resp.status_code == 403
    resp = api.post(f"/alerts/{help_301}/claim", "vol5")
    assert resp.status_code == 403
    resp = api.post(f"/alerts/{help_301}/resolve", "vol5", {"outcome": "fine"})
    assert resp.status_code == 403
    with api.rt.sessions() as s:
        assert s.scalar(select(Alert.status).filter_by(id=help_301)) == "open"


def test_bad_resolve_bodies_are_400_with_a_precise_error(api: Api) -> None:
    alert_id = api.alert_id("r-301", "help")
    path = f"/alerts/{alert_id}/resolve"
    allowed = list(OUTCOMES)

    resp = api.post(path, "vol3", data="outcome=fine")
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": 'the body must be a JSON object: {"outcome": "...", "note": "..."}',
        "allowed": allowed,
    }
    assert api.post(path, "vol3", ["fine"]).status_code == 400
    assert api.post(path, "vol3", {"note": "x"}).get_json() == {
        "error": "outcome is required",
        "field": "outcome",
        "allowed": allowed,
    }
    assert api.post(path, "vol3", {"outcome": "great"}).get_json() == {
        "error": "unknown outcome 'great'",
        "field": "outcome",
        "allowed": allowed,
    }
    resp = api.post(path, "vol3", {"outcome": "fine", "note": "x" * (NOTE_MAX + 1)})
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": f"note is {NOTE_MAX + 1} characters long; at most {NOTE_MAX} are allowed",
        "field": "note",
        "max": NOTE_MAX,
    }
    assert api.post(path, "vol3", {"outcome": "fine", "note": 5}).get_json() == {
        "error": "note must be a string",
        "field": "note",
    }
    assert api.post(path, "vol3", {"outcome": "fine", "by": "me"}).get_json() == {
        "error": "unknown field(s): by",
        "fields": ["by"],
    }
    with api.rt.sessions() as s:
        assert s.scalar(select(Alert.status).filter_by(id=alert_id)) == "open"
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
    # A note of exactly the maximum is fine.
    resp = api.post(path, "vol3", {"outcome": "sensor_problem", "note": "y" * NOTE_MAX})
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "sensor_problem"


# -- pagination, errors, statements -----------------------------------------------------------


def _add_alerts(rt: Runtime, n: int, same_time: bool = False) -> None:
    """`n` resolved system-free alerts for r-501 (distinct causes), raised a minute apart
    (or all at once), straight into the table."""
    base = at("12:00", "2026-11-20")
    rows = []
    for i in range(n):
        when = base if same_time else base + timedelta(minutes=i)
        rows.append(
            {
                "resident_id": "r-501",
                "kind": "device_offline",
                "cause": f"device_offline:test-{i}",
                "severity": "info",
                "status": "resolved",
                "raised_at": when,
                "last_raised_at": when,
                "resolved_at": when,
            }
        )
    with rt.sessions.begin() as s:
        s.execute(insert(table(Alert)), rows)


@pytest.mark.parametrize("same_time", [False, True])
def test_alerts_page_through_newest_first(api: Api, same_time: bool) -> None:
    _add_alerts(api.rt, 7, same_time)
    with api.rt.sessions() as s:
        expected = [
            a.id
            for a in s.scalars(
                select(Alert)
                .filter_by(resident_id="r-501")
                .order_by(Alert.raised_at.desc(), Alert.id.desc())
            )
        ]
    assert len(expected) == 8  # the help card and the 7 added
    pages, cursor = [], None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = api.get("/alerts", "vol5", **query).get_json()
        pages.append([a["id"] for a in body["alerts"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == expected

    resp = api.get("/alerts", "vol5", cursor="not-a-cursor")
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "cursor is not one this API gave out", "field": "cursor"}
    assert api.get("/alerts", "vol5", limit="201").status_code == 400


def test_events_page_through_newest_first(api: Api) -> None:
    for i, hhmm in enumerate(("10:00", "10:05", "10:10", "10:15", "10:20")):
        feed(api.rt, "zigbee2mqtt/door-501", {"contact": i % 2 == 0}, hhmm)  # closed first
    seen, cursor = [], None
    while True:
        query = {"resident": "r-501", "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = api.get("/events", "fam501", **query).get_json()
        seen += [(e["ts"], e["value"]) for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7  # the help card, the 08:10 door and five more door changes
    assert seen == sorted(seen, reverse=True)
    assert seen[0] == ("2026-11-23T02:20:00+00:00", "closed")
    assert seen[-1] == ("2026-11-22T23:41:00+00:00", "help")


def test_unknown_paths_and_methods_answer_json(api: Api) -> None:
    resp = api.get("/nothing/here", "staff")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "the API has no /api/v1/nothing/here"}
    alert_id = api.alert_id("r-301", "help")
    resp = api.get(f"/alerts/{alert_id}/claim", "staff")
    assert resp.status_code == 405
    assert resp.is_json and "POST" in resp.headers["Allow"]
    resp = api.client.delete(f"/api/v1/alerts/{alert_id}", headers=api.auth("staff"))
    assert resp.status_code == 405 and resp.is_json
    # Paths are not probed without a token either.
    assert api.client.get("/api/v1/nothing").status_code == 401


def test_lists_take_the_same_statements_however_many_rows(api: Api) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    lists = [
        ("/residents", {}),
        ("/devices", {}),
        ("/devices", {"status": "offline"}),
        ("/alerts", {}),
        ("/alerts", {"status": "all", "kind": "device_offline"}),
        ("/events", {"resident": "r-501"}),
    ]

    def measure(user: str) -> list[int]:
        counts = []
        for path, query in lists + ([("/events", {})] if user == "staff" else []):
            statements.clear()
            resp = api.get(path, user, **query)
            assert resp.status_code == 200, (path, resp.get_json())
            counts.append(len(statements))
        return counts

    event.listen(api.rt.db, "before_cursor_execute", count)
    try:
        before = {user: measure(user) for user in ("staff", "vol5")}
        _add_alerts(api.rt, 40)
        for i in range(30):
            feed(api.rt, "zigbee2mqtt/door-501", {"contact": i % 2 == 1}, f"10:{i:02d}")
        feed(api.rt, "zigbee2mqtt/curtain-501/availability", {"state": "offline"}, "10:40")
        after = {user: measure(user) for user in ("staff", "vol5")}
    finally:
        event.remove(api.rt.db, "before_cursor_execute", count)
    with api.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) > 30
    assert after == before
    assert max(max(c) for c in after.values()) <= 4  # token, scope, the list (+ a zone)
