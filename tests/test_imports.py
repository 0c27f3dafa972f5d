"""File imports in the dashboard (issue 4, point 6; web/imports.py): an admin uploads a
residents spreadsheet or the community file, sees a preview of every row (changes and
problems) with nothing saved, and imports exactly what was previewed. The ingestor knows
the new devices at once. Only admins; CSRF on every form; a tampered, expired or repeated
confirmation writes nothing. Real SQLite, the app's test client, and one real Chromium at
phone width."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from support.browser import browser_page, chromium, live_server, overflow, screenshot
from support.web import csrf_token, signed_in, visible, web_app
from support.world import COMMUNITY, PASSWORD, feed
from werkzeug.test import TestResponse

from curtainwatch.cli import main
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.models import (
    AppSetting,
    AuditEntry,
    Device,
    Event,
    Person,
    Resident,
    Routine,
    User,
)

INDEX = "/admin/import/"
GOOD = (
    "编号,姓名,楼栋,房号,窗帘,求助卡,开窗帘,宽限\n"
    "r-401,钱兰,4,401,curtain-401,card-401,07:00-09:00,15m\n"
    "r-402,孙梅,4,402,curtain-402,card-402,07:30-09:30,\n"
)
BAD = (
    "id,name,building,curtain,curtain_open\n"
    "r-401,Qian Lan,4,curtain-401,07:00-09:00\n"
    "r-402,,4,,7:00-25:00\n"
)


@pytest.fixture
def admin(rt: Runtime) -> FlaskClient:
    return signed_in(web_app(rt), "admin")


def upload(
    client: FlaskClient,
    data: bytes | str,
    name: str = "residents.csv",
    path: str = "/admin/import/spreadsheet",
    **fields: Any,
) -> TestResponse:
    body = data.encode() if isinstance(data, str) else data
    form = {"csrf_token": csrf_token(client, INDEX), "file": (io.BytesIO(body), name), **fields}
    return client.post(path, data=form, content_type="multipart/form-data")


def preview_of(client: FlaskClient, resp: TestResponse) -> tuple[str, TestResponse]:
    assert resp.status_code == 302, visible(resp)[:800]
    location = resp.headers["Location"]
    assert location.startswith("/admin/import/preview/")
    page = client.get(location)
    assert page.status_code == 200
    return location.rsplit("/", 1)[1], page


def confirm(client: FlaskClient, key: str, page: TestResponse, **override: str) -> TestResponse:
    html = page.get_data(as_text=True)
    digest = re.search(r'name="plan" value="([0-9a-f]+)"', html)
    assert digest
    data = {"csrf_token": csrf_token(client, INDEX), "plan": digest.group(1), **override}
    return client.post(f"/admin/import/confirm/{key}", data=data)


def residents(rt: Runtime) -> set[str]:
    with rt.sessions() as s:
        return set(s.scalars(select(Resident.id)))


def uploads(rt: Runtime) -> int:
    with rt.sessions() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(AppSetting)
                .where(AppSetting.key.startswith("import:"))
            )
            or 0
        )


def test_index_offers_both_uploads_and_the_templates(admin: FlaskClient) -> None:
    resp = admin.get(INDEX)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'action="/admin/import/spreadsheet"' in html
    assert 'action="/admin/import/community"' in html
    assert 'href="/admin/import/template.csv"' in html
    assert 'href="/admin/import/template.xlsx"' in html
    text = visible(resp)
    assert "Residents not in this file are no longer watched" in text
    assert "curtain_open" in text and "开窗帘" in text  # the column reference


def test_templates_download_as_csv_and_xlsx(admin: FlaskClient) -> None:
    csv_resp = admin.get("/admin/import/template.csv")
    assert csv_resp.status_code == 200
    assert csv_resp.mimetype == "text/csv"
    assert "attachment" in csv_resp.headers["Content-Disposition"]
    assert csv_resp.data.startswith("\ufeffid,name,building,".encode())
    xlsx_resp = admin.get("/admin/import/template.xlsx")
    assert xlsx_resp.status_code == 200
    book = load_workbook(io.BytesIO(xlsx_resp.data))
    assert book.sheetnames == ["residents", "columns"]
    assert book["residents"]["A1"].value == "id" and book["residents"]["A2"].value == "r-101"
    explained = {row[0]: row[4] for row in book["columns"].iter_rows(min_row=2, values_only=True)}
    assert explained["grace"].startswith("Extra time after each window")
    assert admin.get("/admin/import/template.pdf").status_code == 404


def test_a_sheet_with_problems_previews_every_row_and_saves_nothing(
    rt: Runtime, admin: FlaskClient
) -> None:
    before = residents(rt)
    key, page = preview_of(admin, upload(admin, BAD))
    text = visible(page)
    assert "r-401 Qian Lan new" in text
    assert "row 3, column name: is empty" in text
    assert (
        'row 3, column curtain_open: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)'
        in text
    )
    assert "This file has 3 problem(s)" in text
    html = page.get_data(as_text=True)
    assert re.search(r'<button class="primary"\s+disabled', html)  # all or nothing
    assert residents(rt) == before
    # Pressing Import anyway (a hand-made POST) imports nothing either.
    resp = confirm(admin, key, page)
    assert resp.status_code == 400
    assert residents(rt) == before


def test_problems_are_shown_in_the_admins_language(rt: Runtime) -> None:
    """The same problems as above, for an admin who reads Chinese: every message and its
    place are translated; the values from the file and its paths stay as written."""
    with rt.sessions.begin() as s:
        s.execute(update(User).where(User.username == "admin").values(language="zh-CN"))
    admin = signed_in(web_app(rt), "admin")
    _key, page = preview_of(admin, upload(admin, BAD))
    text = visible(page)
    assert "第 3 行，name 列：为空" in text
    assert '第 3 行，curtain_open 列："25:00" 不是时间（应写成 "HH:MM"，00:00 至 23:59）' in text
    assert "is empty" not in text and "is not a time" not in text

    yaml_text = COMMUNITY.replace('end: "22:30"', 'end: "25:00"').replace(
        "building:", "bulding:", 1
    )
    _key, page = preview_of(admin, upload(admin, yaml_text, "community.yaml", INDEX + "community"))
    text = visible(page)
    assert (
        'residents[0].routines[1].end："25:00" 不是时间（应写成 "HH:MM"，00:00 至 23:59）' in text
    )
    assert "residents[0].bulding：未知的字段（可用的字段：id, name, building," in text
    assert "residents[0].building：缺少此项" in text

    # Columns as row 1 names them; a path inside a message becomes its column too.
    chinese = '编号,姓名,楼栋,窗帘\nr-401,,4,"c-1, c-1"\n'
    text = visible(preview_of(admin, upload(admin, chinese))[1])
    assert "第 2 行，姓名 列：为空" in text
    assert '第 2 行，窗帘 列：设备编号 "c-1" 已被 窗帘 列 使用' in text

    header = "id,name,building,floor\nr-401,Qian Lan,4,3\n"
    _key, page = preview_of(admin, upload(admin, header))
    assert '第 D 列 "floor"：未知的列（可用的列：id, name, building,' in visible(page)


def test_a_good_sheet_imports_after_the_preview_and_the_ingestor_knows_it(
    rt: Runtime, admin: FlaskClient
) -> None:
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "06:10")  # the registry is loaded
    key, page = preview_of(admin, upload(admin, GOOD))
    text = visible(page)
    assert "2 new" in text and "Nothing has been saved yet" in text
    assert "curtain_open : 07:00-09:00 +15m" in text
    assert "Residents not in this file stay as they are." in text
    assert residents(rt) == {"r-301", "r-302", "r-501"}  # not yet

    resp = confirm(admin, key, page)
    assert resp.status_code == 302 and resp.headers["Location"] == INDEX
    done = admin.get(INDEX)
    assert "Imported residents.csv: 2 new, 0 changed, 0 unchanged, 0 no longer watched." in visible(
        done
    )
    with rt.sessions() as s:
        assert set(s.scalars(select(Resident.id).where(Resident.active))) == {
            "r-301",
            "r-302",
            "r-501",
            "r-401",
            "r-402",
        }
        assert s.get(Device, "curtain-401") is not None and s.get(Device, "card-402") is not None
        routine = s.scalars(
            select(Routine).where(Routine.resident_id == "r-401", Routine.kind == "curtain_open")
        ).one()
        assert (routine.start, routine.end, routine.grace_s) == ("07:00", "09:00", 900)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.spreadsheet")).one()
        assert (entry.actor, entry.target) == ("user:admin", "residents.csv")
        assert '"new": 2' in entry.detail
    assert uploads(rt) == 0  # the kept file is gone once imported

    feed(rt, "zigbee2mqtt/curtain-401", {"position": 100}, "07:31")
    with rt.sessions() as s:
        events = s.scalars(select(Event).where(Event.resident_id == "r-401")).all()
        assert [(e.device_id, e.kind, e.value) for e in events] == [
            ("curtain-401", "curtain", "open")
        ]


def test_xlsx_upload_with_retire_shows_who_stops_being_watched(
    rt: Runtime, admin: FlaskClient
) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "name", "building", "phone"])
    sheet.append(["r-302", "Zhao Guiying", 3, 13900000302])
    data = io.BytesIO()
    book.save(data)
    resp = upload(admin, data.getvalue(), "list.xlsx", retire_missing="on")
    key, page = preview_of(admin, resp)
    text = visible(page)
    assert "These 2 residents are not in this file" in text
    assert "r-301 Wang Shulan" in text and "r-501 Sun Lihua" in text
    assert "phone : — → 13900000302" in text
    assert confirm(admin, key, page).status_code == 302
    with rt.sessions() as s:
        assert set(s.scalars(select(Resident.id).where(Resident.active))) == {"r-302"}


def test_tampered_expired_and_repeated_confirmations_are_refused(
    rt: Runtime, admin: FlaskClient
) -> None:
    key, page = preview_of(admin, upload(admin, GOOD))
    tampered = confirm(admin, key, page, plan="0" * 64)
    assert tampered.status_code == 409
    assert "Nothing was imported" in visible(tampered)
    assert uploads(rt) == 1  # still kept: the refusal rolled back the claim
    other = key[:-2] + ("yy" if key.endswith("xx") else "xx")  # the key is random
    assert confirm(admin, other, page).status_code == 410  # not an upload
    assert residents(rt) == {"r-301", "r-302", "r-501"}

    # The database changed after the preview: what it showed is no longer what would happen.
    key2, page2 = preview_of(admin, upload(admin, "id,name,building,phone\nr-302,Zhao,3,1\n"))
    with rt.sessions.begin() as s:
        r302 = s.get(Resident, "r-302")
        assert r302 is not None
        r302.phone = "2"
    stale = confirm(admin, key2, page2)
    assert stale.status_code == 409 and "check this new preview" in visible(stale)
    with rt.sessions() as s:
        assert s.scalar(select(Resident.phone).where(Resident.id == "r-302")) == "2"

    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.advance(timedelta(hours=1, seconds=1))  # an upload is kept for an hour
    expired = confirm(admin, key, page)
    assert expired.status_code == 410
    assert "This upload has expired or was imported already" in visible(expired)
    assert admin.get(f"/admin/import/preview/{key}").status_code == 410
    assert residents(rt) == {"r-301", "r-302", "r-501"}

    key3, page3 = preview_of(admin, upload(admin, GOOD))
    assert confirm(admin, key3, page3).status_code == 302
    assert confirm(admin, key3, page3).status_code == 410  # a second click imports nothing
    with rt.sessions() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action.like("import.%"))
            )
            == 1
        )


def test_discard_forgets_the_upload(rt: Runtime, admin: FlaskClient) -> None:
    key, _ = preview_of(admin, upload(admin, GOOD))
    assert uploads(rt) == 1
    resp = admin.post(f"/admin/import/discard/{key}", data={"csrf_token": csrf_token(admin, INDEX)})
    assert resp.status_code == 302
    assert uploads(rt) == 0
    assert admin.get(f"/admin/import/preview/{key}").status_code == 410


def test_community_file_with_an_error_shows_the_path(rt: Runtime, admin: FlaskClient) -> None:
    text = COMMUNITY.replace('end: "22:30"', 'end: "25:00"')
    resp = upload(admin, text, "community.yaml", "/admin/import/community")
    key, page = preview_of(admin, resp)
    said = visible(page)
    assert "Problems with the file" in said
    assert (
        'residents[0].routines[1].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)'
        in said
    )
    assert re.search(r'<button class="primary"\s+disabled', page.get_data(as_text=True))
    assert confirm(admin, key, page).status_code == 400


def test_community_file_imports_people_and_reloads_the_registry(
    rt: Runtime, admin: FlaskClient
) -> None:
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "06:10")
    text = COMMUNITY.replace(
        "people:",
        '  - id: r-601\n    name: Liu Fen\n    building: "6"\n    devices:\n'
        "      - {id: curtain-601, kind: curtain}\n    routines:\n"
        '      - {kind: curtain_open, start: "07:00", end: "09:00"}\n'
        'people:\n  - {id: v-ma, name: Ma Jie, role: volunteer, buildings: ["6"],'
        ' notify: ["json://127.0.0.1:9/v-ma"]}',
    )
    key, page = preview_of(admin, upload(admin, text, "community.yaml", "/admin/import/community"))
    said = visible(page)
    assert "1 new" in said and "3 unchanged" in said
    assert "v-ma Ma Jie: new" in said
    assert confirm(admin, key, page).status_code == 302
    with rt.sessions() as s:
        assert s.get(Person, "v-ma") is not None
        assert s.get(Resident, "r-601") is not None
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.community")).one()
        assert entry.target == "community.yaml"
    feed(rt, "zigbee2mqtt/curtain-601", {"position": 100}, "07:20")
    with rt.sessions() as s:
        assert (
            s.scalar(select(Event.resident_id).where(Event.device_id == "curtain-601")) == "r-601"
        )


def test_a_cli_import_is_audited_like_a_web_one(
    rt: Runtime, admin: FlaskClient, tmp_path: Path, db_url: str
) -> None:
    """`curtainwatch import FILE` goes the web's one way: an audit line naming who (the OS
    user), the file and the counts its preview would show, on the audit page and among the
    import page's recent imports."""
    path = tmp_path / "community.yaml"
    path.write_text(
        COMMUNITY.replace(
            "people:",
            '  - id: r-601\n    name: Liu Fen\n    building: "6"\n    devices:\n'
            "      - {id: curtain-601, kind: curtain}\npeople:",
        ),
        encoding="utf-8",
    )
    assert main(["--database", db_url, "import", str(path)]) == 0
    with rt.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.community")).one()
        assert re.fullmatch(r"cli(:.+)?", entry.actor), entry.actor
        assert entry.target == "community.yaml"
        assert json.loads(entry.detail) == {
            "file": "community.yaml",
            "new": 1,
            "changed": 0,
            "unchanged": 3,
            "invalid": 0,
            "retired": 0,
            "people_new": 0,
            "people_changed": 0,
            "people_removed": 0,
        }
        assert s.get(Resident, "r-601") is not None
    audit = visible(admin.get("/admin/audit"))
    assert entry.actor in audit and "import.community" in audit and "community.yaml" in audit
    recent = visible(admin.get(INDEX))
    assert "1 new, 0 changed, 3 unchanged, 0 no longer watched" in recent


def test_a_file_over_5_mb_is_refused_with_a_message(rt: Runtime, admin: FlaskClient) -> None:
    big = b"id,name,building\n" + b"r-1,A,3\n" * (5 * 1024 * 1024 // 8 + 10)
    resp = upload(admin, big)
    assert resp.status_code == 413
    assert "The file is larger than 5 MB." in visible(resp)
    assert uploads(rt) == 0


def test_an_upload_without_a_file_says_so(admin: FlaskClient) -> None:
    resp = admin.post(
        "/admin/import/spreadsheet",
        data={"csrf_token": csrf_token(admin, INDEX)},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400
    assert "Choose a file first." in visible(resp)


def test_csrf_is_required_on_every_form(rt: Runtime, admin: FlaskClient) -> None:
    for path in ("/admin/import/spreadsheet", "/admin/import/community"):
        resp = admin.post(
            path,
            data={"file": (io.BytesIO(GOOD.encode()), "r.csv")},
            content_type="multipart/form-data",
        )
        assert resp.status_code == 400
    assert uploads(rt) == 0
    key, page = preview_of(admin, upload(admin, GOOD))
    digest = re.search(r'name="plan" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert digest
    assert admin.post(f"/admin/import/confirm/{key}", data={"plan": digest[1]}).status_code == 400
    assert admin.post(f"/admin/import/discard/{key}").status_code == 400
    assert residents(rt) == {"r-301", "r-302", "r-501"} and uploads(rt) == 1


@pytest.mark.parametrize("username", ["staff", "vol3", "fam301"])
def test_only_admins_may_import(rt: Runtime, username: str) -> None:
    app = web_app(rt)
    key, _ = preview_of(signed := signed_in(app, "admin"), upload(signed, GOOD))
    client = signed_in(app, username)
    token = csrf_token(client, "/login")
    for path in (
        INDEX,
        "/admin/import/template.csv",
        "/admin/import/template.xlsx",
        f"/admin/import/preview/{key}",
    ):
        assert client.get(path).status_code == 403, path
    for path in (
        "/admin/import/spreadsheet",
        "/admin/import/community",
        f"/admin/import/confirm/{key}",
        f"/admin/import/discard/{key}",
    ):
        resp = client.post(
            path,
            data={"csrf_token": token, "file": (io.BytesIO(GOOD.encode()), "r.csv")},
            content_type="multipart/form-data",
        )
        assert resp.status_code == 403, path
    assert residents(rt) == {"r-301", "r-302", "r-501"} and uploads(rt) == 1
    anonymous = app.test_client()
    assert anonymous.get(INDEX).status_code == 302  # to the sign-in page


def test_another_admins_upload_is_not_theirs_to_see(rt: Runtime) -> None:
    from monitor.admin.users import create_user

    with rt.sessions.begin() as s:
        create_user(s, "admin2", PASSWORD, "admin", rt.clock.now(), language="en")
    app = web_app(rt)
    key, _ = preview_of(first := signed_in(app, "admin"), upload(first, GOOD))
    assert signed_in(app, "admin2").get(f"/admin/import/preview/{key}").status_code == 410


def test_import_pages_fit_a_phone(rt: Runtime, tmp_path: Any) -> None:
    app = web_app(rt)
    bad = tmp_path / "residents.csv"
    bad.write_text(
        BAD
        + "r-403,A very long name that goes on and on and on,4,"
        + "curtain-403-with-a-long-id,07:00-09:00\n"
    )
    with live_server(app) as base, chromium() as browser, browser_page(browser, 360, 740) as page:
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        page.goto(f"{base}{INDEX}")
        assert overflow(page) == []
        page.locator("summary").first.click()  # the column reference, opened
        assert overflow(page) == []
        screenshot(page, "import")
        page.set_input_files("form[action='/admin/import/spreadsheet'] input[type=file]", str(bad))
        page.locator("form[action='/admin/import/spreadsheet'] button").click()
        page.wait_for_load_state()
        assert "row 3, column name: is empty" in page.inner_text("body")
        assert page.get_by_role("button", name="Import", exact=True).is_disabled()
        assert overflow(page) == []
        screenshot(page, "import-preview")
