"""The authorization matrix (issue 4): every route of the app, for every kind of visitor
(anonymous, a volunteer, a family member, staff, an admin), is either allowed or refused,
as MATRIX below says; and nothing of a resident out of the user's scope leaks through a
page, a list, a count, the board's live tiles, the CSV export or the JSON API.

MATRIX is the documentation of who may do what. It must name exactly the routes of
app.url_map (a route added later without a line makes `test_every_route_has_a_row` fail);
PATHS and FORMS say how each is asked.

How a line is checked (`test_matrix`, once per user, each on a cast of its own with data
in every list, see support.authz.build_cast):
- ids in a URL are real: a resident (and their alert, routine, away period, devices) in the
  user's scope, and, for volunteers and family, one outside it too: vol5 and fam501 are
  pointed at building 3's r-301, vol3 at building 5's r-501, fam301 at r-302 (their
  relative's neighbour). "own" means allowed for the first and refused for the second.
- allowed: a 2xx, or a redirect that stays in the same part of the site (not to sign-in);
  refused: 403 (signed-in), a redirect to /login (anonymous, pages), 401 (the API without
  a token, the board's tiles signed out).
- POSTs carry a valid CSRF token (and real, effective form data), so a refusal is the
  authorization's and not CSRF's; a refused POST must leave every table as it was.
- every answer a volunteer or family member can read is searched for the names, ids,
  devices, notes and buildings of the residents out of their scope (support.authz.forbidden).
- the API is also asked with the dashboard's session cookie only: always 401.
- the link pages (/m/<token>, /family/...) need no sign-in: the token decides, whoever
  is signed in. A genuine token opens the page for every visitor; a bad one is refused
  (403) for every visitor, and a refused POST changes nothing.

Decisions recorded here:
- /metrics is operational (Prometheus scrapes it without a session), open by default, and
  holds only counts: no resident, person, device or building. With a metrics token set it
  answers 401 without it, whoever is signed in.
- /healthz is open (load balancers carry no credentials) and holds no personal data.
- the board's /board/tiles answers 401 (not a redirect) when signed out, so its script can
  say so.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support.authz import (
    ALL_USERS,
    ANONYMOUS,
    BUILDING,
    NAMES,
    ROLE_OF,
    SEES,
    TARGETS,
    Cast,
    build_cast,
    changed_tables,
    forbidden,
    foreign_names,
    snapshot,
)
from support.web import csrf_token, visible
from support.world import COMMUNITY, PASSWORD
from werkzeug.test import TestResponse

from alerts.tokens import make_link_token
from monitor.models import OPEN_STATUSES, Alert
from web.forms import form_token
from web.phone import FORM as PHONE_FORM

Data = dict[str, str] | Callable[[], dict[str, Any]]
COLUMNS = ("anonymous", "volunteer", "family", "staff", "admin")

# Who may do what, one line per route (method, endpoint), in the order the test sends them
# (GETs first, then the rest in this order). Per kind of visitor:
#   ok     allowed (2xx, or a redirect within the same part of the site)
#   own    allowed for ids in the user's scope, 403 for the others
#   403    refused                      login  anonymous: redirected to sign in
#   401    no credentials (API, tiles)  404    the API's catch-all: no such thing
#   token  no sign-in: the link's signed token decides, whoever is signed in
# fmt: off
MATRIX: dict[tuple[str, str], str] = {
    # method  endpoint                           anonymous volunteer family staff admin
    ("GET",  "auth.login"):                      "ok       ok        ok     ok    ok",
    # today board
    ("GET",  "board.index"):                     "login    ok        ok     ok    ok",
    ("GET",  "board.tiles"):                     "401      ok        ok     ok    ok",
    # alerts: family read their relative's, volunteers act in their buildings
    ("GET",  "alerts.queue"):                    "login    ok        ok     ok    ok",
    ("GET",  "alerts.show"):                     "login    own       own    ok    ok",
    ("GET",  "alerts.history"):                  "login    ok        ok     ok    ok",
    ("GET",  "alerts.export"):                   "login    ok        ok     ok    ok",
    ("POST", "alerts.claim"):                    "login    own       403    ok    ok",
    ("POST", "alerts.note"):                     "login    own       403    ok    ok",
    ("POST", "alerts.resolve"):                  "login    own       403    ok    ok",
    # residents: everyone sees their own; staff edit
    ("GET",  "residents.index"):                 "login    ok        ok     ok    ok",
    ("GET",  "residents.show"):                  "login    own       own    ok    ok",
    ("POST", "residents.change_routine"):        "login    403       403    ok    ok",
    ("POST", "residents.add_away_period"):       "login    403       403    ok    ok",
    ("POST", "residents.delete_away_period"):    "login    403       403    ok    ok",
    # devices and data quality: staff
    ("GET",  "devices.index"):                   "login    403       403    ok    ok",
    ("GET",  "devices.all_devices"):             "login    403       403    ok    ok",
    ("GET",  "devices.dead_letters"):            "login    403       403    ok    ok",
    ("POST", "devices.assign"):                  "login    403       403    ok    ok",
    # administration: staff; users: admins
    ("GET",  "admin.index"):                     "login    403       403    ok    ok",
    ("GET",  "admin.audit"):                     "login    403       403    ok    ok",
    ("GET",  "admin.residents"):                 "login    403       403    ok    ok",
    ("GET",  "admin.resident"):                  "login    403       403    ok    ok",
    ("POST", "admin.resident"):                  "login    403       403    ok    ok",
    ("GET",  "admin.resident_new"):              "login    403       403    ok    ok",
    ("POST", "admin.resident_new"):              "login    403       403    ok    ok",
    ("POST", "admin.resident_deactivate"):       "login    403       403    ok    ok",
    ("POST", "admin.resident_reactivate"):       "login    403       403    ok    ok",
    ("POST", "admin.device_add"):                "login    403       403    ok    ok",
    ("POST", "admin.device_kind"):               "login    403       403    ok    ok",
    ("POST", "admin.device_move"):               "login    403       403    ok    ok",
    ("POST", "admin.device_remove"):             "login    403       403    ok    ok",
    ("GET",  "admin.people"):                    "login    403       403    ok    ok",
    ("GET",  "admin.person"):                    "login    403       403    ok    ok",
    ("POST", "admin.person"):                    "login    403       403    ok    ok",
    ("GET",  "admin.person_new"):                "login    403       403    ok    ok",
    ("POST", "admin.person_new"):                "login    403       403    ok    ok",
    ("GET",  "admin.family"):                    "login    403       403    ok    ok",
    ("POST", "admin.family"):                    "login    403       403    ok    ok",
    ("GET",  "admin.users"):                     "login    403       403    403   ok",
    ("POST", "admin.user_add"):                  "login    403       403    403   ok",
    ("POST", "admin.user_deactivate"):           "login    403       403    403   ok",
    ("POST", "admin.user_password"):             "login    403       403    403   ok",
    ("POST", "admin.user_reactivate"):           "login    403       403    403   ok",
    ("POST", "admin.user_token"):                "login    403       403    403   ok",
    # imports: admins
    ("GET",  "imports.index"):                   "login    403       403    403   ok",
    ("GET",  "imports.template"):                "login    403       403    403   ok",
    ("GET",  "imports.preview"):                 "login    403       403    403   ok",
    ("POST", "imports.upload_sheet"):            "login    403       403    403   ok",
    ("POST", "imports.upload_community"):        "login    403       403    403   ok",
    ("POST", "imports.confirm"):                 "login    403       403    403   ok",
    ("POST", "imports.discard"):                 "login    403       403    403   ok",
    # JSON API: bearer tokens only (never the session cookie), the same scopes
    ("GET",  "api.residents"):                   "401      ok        ok     ok    ok",
    ("GET",  "api.resident"):                    "401      own       own    ok    ok",
    ("GET",  "api.devices"):                     "401      ok        ok     ok    ok",
    ("GET",  "api.events"):                      "401      own       own    ok    ok",
    ("GET",  "api.alerts"):                      "401      ok        ok     ok    ok",
    ("GET",  "api.alert"):                       "401      own       own    ok    ok",
    ("POST", "api.claim_alert"):                 "401      own       403    ok    ok",
    ("POST", "api.resolve_alert"):               "401      own       403    ok    ok",
    ("GET",  "api.unknown"):                     "401      404       404    404   404",
    ("POST", "api.unknown"):                     "401      404       404    404   404",
    ("PUT",  "api.unknown"):                     "401      404       404    404   404",
    ("PATCH", "api.unknown"):                    "401      404       404    404   404",
    ("DELETE", "api.unknown"):                   "401      404       404    404   404",
    # operations: open, counts only (see the module doc)
    ("GET",  "ops.healthz"):                     "ok       ok        ok     ok    ok",
    ("GET",  "ops.metrics"):                     "ok       ok        ok     ok    ok",
    # link pages: no sign-in, the signed token decides
    ("GET",  "phone.page"):                      "token    token     token  token token",
    ("POST", "phone.claim"):                     "token    token     token  token token",
    ("POST", "phone.resolve"):                   "token    token     token  token token",
    ("GET",  "family.invitation"):               "token    token     token  token token",
    ("POST", "family.accept_invitation"):        "token    token     token  token token",
    ("GET",  "family.stop_page"):                "token    token     token  token token",
    ("POST", "family.stop"):                     "token    token     token  token token",
    # last: these change who is signed in
    ("POST", "auth.language"):                   "ok       ok        ok     ok    ok",
    ("POST", "auth.login"):                      "ok       ok        ok     ok    ok",
    ("POST", "auth.logout"):                     "ok       ok        ok     ok    ok",
}

# Where each endpoint is asked (every method), its ids filled by support.authz.Cast.ids
# for a resident in the user's scope and one outside it ({plan}: the upload's digest).
PATHS: dict[str, str] = {
    "auth.login":                   "/login",
    "auth.language":                "/language",
    "auth.logout":                  "/logout",
    "board.index":                  "/",
    "board.tiles":                  "/board/tiles",
    "alerts.queue":                 "/alerts/",
    "alerts.show":                  "/alerts/{alert}",
    "alerts.history":               "/alerts/history?status=all",
    "alerts.export":                "/alerts/history.csv?status=all",
    "alerts.claim":                 "/alerts/{alert}/claim",
    "alerts.note":                  "/alerts/{alert}/note",
    "alerts.resolve":               "/alerts/{alert}/resolve",
    "residents.index":              "/residents/",
    "residents.show":               "/residents/{resident}",
    "residents.change_routine":     "/residents/{resident}/routines/{routine}",
    "residents.add_away_period":    "/residents/{resident}/away",
    "residents.delete_away_period": "/residents/{resident}/away/{away}/delete",
    "devices.index":                "/devices/",
    "devices.all_devices":          "/devices/all",
    "devices.dead_letters":         "/devices/dead-letters",
    "devices.assign":               "/devices/unknown/assign",
    "admin.index":                  "/admin/",
    "admin.audit":                  "/admin/audit",
    "admin.residents":              "/admin/residents",
    "admin.resident":               "/admin/residents/{resident}",
    "admin.resident_new":           "/admin/residents/new",
    "admin.resident_deactivate":    "/admin/residents/deactivate",
    "admin.resident_reactivate":    "/admin/residents/reactivate",
    "admin.device_add":             "/admin/devices/add",
    "admin.device_kind":            "/admin/devices/kind",
    "admin.device_move":            "/admin/devices/move",
    "admin.device_remove":          "/admin/devices/remove",
    "admin.people":                 "/admin/people",
    "admin.person":                 "/admin/people/v-zhou",
    "admin.person_new":             "/admin/people/new",
    "admin.family":                 "/admin/family",
    "admin.users":                  "/admin/users",
    "admin.user_add":               "/admin/users/add",
    "admin.user_deactivate":        "/admin/users/deactivate",
    "admin.user_password":          "/admin/users/password",
    "admin.user_reactivate":        "/admin/users/reactivate",
    "admin.user_token":             "/admin/users/token",
    "imports.index":                "/admin/import/",
    "imports.template":             "/admin/import/template.csv",
    "imports.preview":              "/admin/import/preview/{upload}",
    "imports.upload_sheet":         "/admin/import/spreadsheet",
    "imports.upload_community":     "/admin/import/community",
    "imports.confirm":              "/admin/import/confirm/{upload}",
    "imports.discard":              "/admin/import/discard/{upload2}",
    "api.residents":                "/api/v1/residents",
    "api.resident":                 "/api/v1/residents/{resident}",
    "api.devices":                  "/api/v1/devices",
    "api.events":                   "/api/v1/events?resident={resident}",
    "api.alerts":                   "/api/v1/alerts",
    "api.alert":                    "/api/v1/alerts/{missed}",
    "api.claim_alert":              "/api/v1/alerts/{missed}/claim",
    "api.resolve_alert":            "/api/v1/alerts/{missed}/resolve",
    "api.unknown":                  "/api/v1/no-such-thing",
    "ops.healthz":                  "/healthz",
    "ops.metrics":                  "/metrics",
    "phone.page":                   "/m/{phone_link}",
    "phone.claim":                  "/m/{phone_link}/claim",
    "phone.resolve":                "/m/{phone_link}/resolve",
    "family.invitation":            "/family/invite/{invite_link}",
    "family.accept_invitation":     "/family/invite/{invite_link}",
    "family.stop_page":             "/family/stop/{stop_link}",
    "family.stop":                  "/family/stop/{stop_link}",
}
# fmt: on


def upload(name: str, body: str) -> Callable[[], dict[str, Any]]:
    # A fresh stream per request: the test client reads it.
    return lambda: {"file": (io.BytesIO(body.encode()), name)}


STAFF_USER = {"user_id": "{staff_user}"}
RESOLVE = {"outcome": "fine", "note": "authz matrix"}

# What a POST sends: real, effective changes (a refusal must be the authorization's, and
# must be seen to have stopped something). The CSRF token is added to every form.
FORMS: dict[str, Data] = {
    "auth.login": {"username": "{me}", "password": PASSWORD},
    "auth.language": {"lang": "en", "next": "/"},
    "alerts.note": {"text": "authz matrix note"},
    "alerts.resolve": RESOLVE,
    "residents.change_routine": {"start": "07:00", "end": "09:30", "grace": "15m"},
    "residents.add_away_period": {"first_day": "2026-12-10", "last_day": "2026-12-12"},
    "devices.assign": {"device_id": "mystery-9", "resident_id": "{resident}", "kind": "motion"},
    "admin.resident": {"name": "{name}", "building": "{building}", "unit": "{unit}", "phone": "0"},
    "admin.resident_new": {"id": "r-999", "name": "Qian Lan", "building": "9", "unit": "999"},
    "admin.resident_deactivate": {"resident_id": "r-302"},
    "admin.resident_reactivate": {"resident_id": "r-302"},
    "admin.device_add": {
        "resident_id": "{resident}",
        "device_id": "extra-{unit}",
        "kind": "motion",
    },
    "admin.device_kind": {"device_id": "{curtain}", "kind": "contact", "back_to": "{resident}"},
    "admin.device_move": {"device_id": "{card}", "resident_id": "{elsewhere}"},
    "admin.device_remove": {"device_id": "{curtain}"},
    # for vol5: widening their own buildings
    "admin.person": {
        "name": "Zhou Lei",
        "role": "volunteer",
        "language": "en",
        "buildings": "3, 5",
    },
    "admin.person_new": {
        "id": "v-new",
        "name": "Wu Hua",
        "role": "volunteer",
        "language": "en",
        "buildings": "3",
    },
    "admin.family": {"resident_id": "{resident}"},
    "admin.user_add": {"username": "intruder", "role": "admin", "password": "a long password 1"},
    "admin.user_deactivate": STAFF_USER,
    "admin.user_password": {"user_id": "{staff_user}", "password": "another long password"},
    "admin.user_reactivate": STAFF_USER,
    "admin.user_token": STAFF_USER,
    "imports.upload_sheet": upload("residents.csv", "id,name,building,unit\nr-902,Wu Mei,9,902\n"),
    "imports.upload_community": upload("community.yaml", COMMUNITY),
    "imports.confirm": {"plan": "{plan}"},
    "api.resolve_alert": RESOLVE,
    "phone.resolve": {"outcome": "fine"},
    "family.accept_invitation": {
        "name": "Wang Jun",
        "language": "en",
        "notify": "json://127.0.0.1:9/x",
    },
}


@dataclass(frozen=True)
class Row:
    """One route, put together from MATRIX, PATHS and FORMS."""

    method: str
    endpoint: str
    path: str
    who: dict[str, str]  # kind of visitor (COLUMNS) -> expectation
    data: Data | None = None

    def expect(self, role: str) -> str:
        return self.who[role]

    @property
    def has_ids(self) -> bool:
        values = self.data.values() if isinstance(self.data, dict) else ()
        return "{" in self.path or any("{" in v for v in values)


def rows() -> list[Row]:
    out = []
    for (method, endpoint), line in MATRIX.items():
        who = dict(zip(COLUMNS, line.split(), strict=True))
        data = FORMS.get(endpoint) if method != "GET" else None
        out.append(Row(method, endpoint, PATHS[endpoint], who, data))
    return out


REFUSED = ("403", "login", "401", "404")
BAD_LINK = "not-a-genuine-token"
LINKS = ("phone_link", "invite_link", "stop_link")


def test_every_route_has_a_row(app: Flask) -> None:
    """MATRIX names exactly the app's routes (method and endpoint); PATHS and FORMS name no
    endpoint the app does not have."""
    routes = {
        (method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert sorted(routes - set(MATRIX)) == [], "routes without a line in MATRIX"
    assert sorted(set(MATRIX) - routes) == [], "lines for routes the app does not have"
    assert set(PATHS) == {endpoint for _method, endpoint in routes}
    assert set(FORMS) <= set(PATHS)
    for row in rows():
        assert set(row.who.values()) <= {"ok", "own", "403", "login", "401", "404", "token"}
        assert "own" not in (row.who["anonymous"], row.who["staff"], row.who["admin"]), row
        assert row.has_ids or "own" not in row.who.values(), row


# -- running a row ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    path: str
    data: dict[str, Any] | None
    expect: str


def fill(template: str, ids: dict[str, Any]) -> str:
    return template.format(**ids)


def probes(row: Row, user: str, cast: Cast) -> list[Probe]:
    """The requests one row makes for one user, each with what it must get."""
    expect = row.expect(ROLE_OF[user])
    own, other = TARGETS[user]

    def probe(resident: str, expected: str, links: dict[str, str] | None = None) -> Probe:
        ids = {**cast.ids(user, resident), **(links or cast.link_ids())}
        data = row.data() if callable(row.data) else row.data
        if data and "{plan}" in data.values():
            ids["plan"] = cast.plan_digest(cast.uploads["confirm"])
        filled = {k: fill(v, ids) if isinstance(v, str) else v for k, v in (data or {}).items()}
        return Probe(fill(row.path, ids), filled, expected)

    if expect == "token":
        bad = probe(own, "403", dict.fromkeys(LINKS, BAD_LINK))
        return [probe(own, "ok"), bad] if row.method == "GET" else [bad]
    if not row.has_ids or other is None:
        return [probe(own, "ok" if expect == "own" else expect)]
    if expect == "own":
        return [probe(own, "ok"), probe(other, "403")]
    return [probe(own, expect), probe(other, expect)]


def send(cast: Cast, client: FlaskClient, user: str | None, row: Row, probe: Probe) -> TestResponse:
    """`user` None: the API without a bearer token (the session cookie only)."""
    if row.endpoint.startswith("api."):
        token = cast.api_tokens.get(user or "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if row.method == "GET":
            return client.get(probe.path, headers=headers)
        return client.open(probe.path, method=row.method, json=probe.data or {}, headers=headers)
    if row.method == "GET":
        return client.get(probe.path)
    form = {"csrf_token": csrf_token(client, "/login"), **(probe.data or {})}
    return client.open(probe.path, method=row.method, data=form)


def area(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def verdict(row: Row, probe: Probe, resp: TestResponse) -> str | None:
    """None if the answer is what the row expects, else what is wrong."""
    code = resp.status_code
    target = urlsplit(resp.headers.get("Location", "")).path
    if probe.expect == "ok":
        if 200 <= code < 300:
            return None
        if 300 <= code < 400:
            if row.endpoint.startswith("auth."):
                return None
            if target == "/login":
                return f"allowed expected, sent to sign in ({code})"
            if area(target) != area(probe.path):
                return f"allowed expected, redirected away to {target} ({code})"
            return None
        return f"allowed expected, got {code}"
    if probe.expect == "login":
        ok = code == 302 and target == "/login"
    else:
        ok = code == int(probe.expect)
    return None if ok else f"{probe.expect} expected, got {code} {target}".rstrip()


def leaks(user: str, url: str, body: str, refused: bool) -> list[str]:
    """What `body` shows that `user` must not read. An answer that refuses may repeat the id
    the user sent (an API error names it) but no name; a literal in the URL itself is the
    user's own input echoed, not a leak."""
    if refused:
        return [name for name in foreign_names(user) if name in body]
    found = []
    for pattern in forbidden(user):
        m = pattern.search(body)
        if m and m.group(0) not in url:
            found.append(m.group(0))
    return found


@pytest.mark.parametrize("user", ALL_USERS)
def test_matrix(db_url: str, user: str) -> None:
    """Every line of MATRIX for one user: GETs first (with leak checks), then POSTs and the
    other methods in table order (each refused one must change nothing)."""
    cast = build_cast(db_url)
    client = cast.client(user)
    cookie_only = client if user != ANONYMOUS else None
    failures: list[str] = []
    every = rows()
    for row in [r for r in every if r.method == "GET"] + [r for r in every if r.method != "GET"]:
        for probe in probes(row, user, cast):
            before = snapshot(cast.rt) if row.method != "GET" else None
            resp = send(cast, client, user, row, probe)
            where = f"{row.method} {probe.path} ({row.endpoint}) as {user}"
            problem = verdict(row, probe, resp)
            if problem:
                failures.append(f"{where}: {problem}")
            refused = probe.expect in REFUSED or resp.status_code >= 400
            if before is not None and refused:
                changed = changed_tables(before, snapshot(cast.rt))
                if changed:
                    failures.append(f"{where}: refused, yet changed {changed}")
            body = resp.get_data(as_text=True)
            if row.expect(ROLE_OF[user]) != "token":
                found = leaks(user, probe.path, body, refused)
            else:  # a genuine link shows its alert to whoever holds it; a bad one, nothing
                found = [name for name in NAMES.values() if refused and name in body]
            if found:
                failures.append(f"{where}: shows {found}")
            if cookie_only is not None and row.endpoint.startswith("api."):
                # The session cookie alone never opens the API, not even for a GET.
                before = snapshot(cast.rt) if row.method != "GET" else None
                resp = send(cast, cookie_only, None, row, probe)
                if resp.status_code != 401:
                    failures.append(f"{where} with the session cookie only: {resp.status_code}")
                if before is not None and changed_tables(before, snapshot(cast.rt)):
                    failures.append(f"{where} with the session cookie only: changed data")
    assert not failures, "\n".join(failures)


# -- lists, counts and exports -----------------------------------------------------------------

LEAK_PROBES = (
    "/?building=3",
    "/?building=5",
    "/?status=red",
    "/board/tiles?building=3",
    "/board/tiles?building=5&status=red",
    "/residents/?building=3",
    "/residents/?building=5",
    "/residents/?q=Wang",
    "/residents/?q=Sun",
    "/alerts/history?status=all&resident=r-301",
    "/alerts/history?status=all&resident=r-302",
    "/alerts/history?status=all&resident=r-501",
    "/alerts/history.csv?status=all&resident=r-301",
    "/alerts/history.csv?status=all&resident=r-501",
    "/alerts/history.csv?status=all&kind=help",
    "/api/v1/residents?building=3",
    "/api/v1/residents?building=5",
    "/api/v1/alerts?status=all&resident=r-301",
    "/api/v1/alerts?status=active&resident=r-302",
    "/api/v1/alerts?status=all&resident=r-501",
    "/api/v1/devices?resident=r-301",
    "/api/v1/devices?resident=r-501",
    "/api/v1/devices?status=offline",
    "/api/v1/events?resident=r-301",
    "/api/v1/events?resident=r-302",
    "/api/v1/events?resident=r-501",
    "/metrics",
    "/healthz",
)


def get(cast: Cast, user: str, path: str) -> TestResponse:
    headers = {}
    if path.startswith("/api/"):
        headers = {"Authorization": f"Bearer {cast.api_tokens[user]}"}
    return cast.client(user).get(path, headers=headers)


@pytest.mark.parametrize("user", sorted(SEES))
def test_lists_counts_and_exports_hold_only_the_users_residents(db_url: str, user: str) -> None:
    cast = build_cast(db_url)
    sees = SEES[user]
    others = set(NAMES) - sees
    failures = []

    for path in LEAK_PROBES:
        resp = get(cast, user, path)
        refused = resp.status_code >= 400
        found = leaks(user, path, resp.get_data(as_text=True), refused)
        if found:
            failures.append(f"GET {path} as {user} ({resp.status_code}): shows {found}")
    assert not failures, "\n".join(failures)

    # The API's lists: exactly the residents in scope (each of them has alerts and devices).
    residents = get(cast, user, "/api/v1/residents").get_json()["residents"]
    assert {r["id"] for r in residents} == sees
    alerts = get(cast, user, "/api/v1/alerts?status=all&limit=200").get_json()["alerts"]
    assert {a["resident"] for a in alerts} - {None} == sees
    devices = get(cast, user, "/api/v1/devices").get_json()["devices"]
    assert {d["resident"] for d in devices} == sees
    for resident in NAMES:
        events = get(cast, user, f"/api/v1/events?resident={resident}")
        assert events.status_code == (200 if resident in sees else 403), resident

    # The board and its live tiles: counts per building and per status, and the tiles.
    expected_buildings = {
        b: sum(1 for r in sees if BUILDING[r] == b) for b in {BUILDING[r] for r in sees}
    }
    for path in ("/", "/board/tiles"):
        text = visible(get(cast, user, path))
        total = re.search(r"All buildings: (\d+) residents?", text)
        assert total and int(total.group(1)) == len(sees), (path, text[:300])
        chips = re.search(r"All: (\d+)", text)
        assert chips and int(chips.group(1)) == len(sees), (path, text[:300])
        buildings = {b: int(n) for b, n in re.findall(r"Building (\w+): (\d+) residents?", text)}
        assert buildings == expected_buildings, (path, buildings)
        assert all(NAMES[r] in text for r in sees), (path, text[:300])

    # The queue and the history count only alerts of residents in scope.
    with cast.rt.sessions() as s:
        rows = s.execute(select(Alert.resident_id, Alert.status)).all()
    mine = [(r, st) for r, st in rows if (r in sees if r else user in ("admin", "staff"))]
    open_n = sum(1 for _r, st in mine if st in OPEN_STATUSES)
    queue = visible(get(cast, user, "/alerts/"))
    assert re.search(rf"\b{open_n} open alerts?, oldest first", queue), queue[:400]
    history = visible(get(cast, user, "/alerts/history?status=all"))
    assert re.search(rf"\b{len(mine)} alerts? match", history), history[:400]
    for text in (queue, history):
        assert all(NAMES[r] in text for r in sees if any(m == r for m, _ in mine))
        assert not any(NAMES[r] in text for r in others)

    # The CSV export: one row per alert in scope, no other resident.
    export = get(cast, user, "/alerts/history.csv?status=all")
    table = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(table) - 1 == len(mine)
    assert {line[1] for line in table[1:]} - {""} == sees

    # The residents list: the residents in scope and nobody else.
    listing = visible(get(cast, user, "/residents/"))
    assert all(NAMES[r] in listing for r in sees) and not any(NAMES[r] in listing for r in others)


# -- link pages ------------------------------------------------------------------------------


def test_a_genuine_link_opens_only_what_its_person_may_act_on(db_url: str) -> None:
    """The token decides, not the session: vol5's own genuine link to building 3's alert,
    or a family member's, is refused even to a signed-in admin, and cannot claim it either;
    v-li's opens for anyone."""
    cast = build_cast(db_url)
    key = cast.app.config["LINK_KEY"]
    now = cast.rt.clock.now()
    alert = cast.help_alert["r-301"]
    for user in (ANONYMOUS, "admin", "vol5"):
        client = cast.client(user)
        for person in ("v-zhou", "f-sun", "f-wang"):
            token = make_link_token(key, person, alert, now)
            resp = client.get(f"/m/{token}")
            assert resp.status_code == 403, (user, person)
            assert "Wang Shulan" not in resp.get_data(as_text=True), (user, person)
            with cast.app.test_request_context():
                form = {"form_token": form_token(PHONE_FORM, token)}
            before = snapshot(cast.rt)
            resp = client.post(f"/m/{token}/claim", data=form)
            assert resp.status_code == 403, (user, person)
            assert changed_tables(before, snapshot(cast.rt)) == [], (user, person)
        resp = client.get(f"/m/{make_link_token(key, 'v-li', alert, now)}")
        assert resp.status_code == 200 and "Wang Shulan" in visible(resp)


# -- operations endpoints ----------------------------------------------------------------------


def test_metrics_with_a_token_set_need_it_whoever_is_signed_in(db_url: str) -> None:
    cast = build_cast(db_url, metrics_token="scrape-secret")
    for user in (ANONYMOUS, "admin"):
        client = cast.client(user)
        assert client.get("/metrics").status_code == 401, user
        resp = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert resp.status_code == 200, user
        body = resp.get_data(as_text=True)
        assert 'curtainwatch_alerts{kind="help",status="open"} 2.0' in body
        # Counts only: nothing anonymous may not read (names, ids, devices, buildings).
        assert leaks(ANONYMOUS, "/metrics", body, refused=False) == []
