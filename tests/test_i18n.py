"""The zh-CN translation of the dashboard (issue 4, point 8): every message the sources hold
(as `make translations` extracts them with babel.cfg) has a finished Chinese translation with
the same placeholders, the compiled .mo matches the .po, and pages come out in the user's
language (zh-CN or en), or the browser's when nobody is signed in, with times in the
community's zone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select, update
from support.web import post_form, signed_in, visible, web_app
from support.world import advance, at, feed

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.models import Alert, User

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "web/translations/zh/LC_MESSAGES/messages.po"
MO = PO.with_suffix(".mo")
# As in the Makefile's `translations` target (pybabel extract -k _l -k lazy_gettext -k N_).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%%")
HAN = re.compile(r"[\u4e00-\u9fff]")


def _source_messages() -> Iterator[tuple[str, int, str | tuple[str, ...], str | None]]:
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        yield filename, lineno, message, context


def _msgid(message: object) -> str:
    """The catalogue key: the singular, as Babel keys plural entries."""
    return str(message[0] if isinstance(message, tuple | list) else message or "")


def _strings(value: object) -> tuple[str, ...]:
    """A message's translation(s), plural or not, as a tuple."""
    if isinstance(value, tuple | list):
        return tuple(str(v or "") for v in value)
    return (str(value or ""),)


def _catalog() -> Catalog:
    with open(PO, "rb") as f:
        return read_po(f, locale="zh")


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def test_every_message_in_the_sources_has_a_chinese_translation() -> None:
    catalog = _catalog()
    found = list(_source_messages())
    assert len(found) > 300, "extraction found too little: is babel.cfg right?"
    problems = []
    for filename, lineno, message, context in found:
        if not _msgid(message):
            continue
        where = f"{filename}:{lineno} {_msgid(message)!r}"
        entry = catalog.get(_msgid(message), context=context)
        if entry is None:
            problems.append(f"{where}: not in the .po (run `make translations`)")
            continue
        if entry.fuzzy:
            problems.append(f"{where}: fuzzy")
        strings = _strings(entry.string)
        if not all(strings):
            problems.append(f"{where}: not translated")
            continue
        if isinstance(message, tuple) != isinstance(entry.id, tuple):
            problems.append(f"{where}: plural in one place, singular in the other")
            continue
        # Chinese has one plural form; it carries the plural msgid's placeholders.
        wanted = _placeholders(message[-1] if isinstance(message, tuple) else message)
        for text in strings:
            if _placeholders(text) != wanted:
                problems.append(
                    f"{where}: placeholders {sorted(_placeholders(text))} != {sorted(wanted)}"
                )
    assert not problems, "\n".join(problems)


def test_translations_are_chinese_and_keep_the_fixed_terms() -> None:
    catalog = _catalog()
    # A few terms staff, volunteers and families must see the same way everywhere.
    terms = {
        "I'm going": "我去看看",
        "Help card": "求助卡",
        "Resolve": "处理完毕",
        "Dead letters": "无法识别的消息",
        "Unknown devices": "未登记设备",
    }
    for english, chinese in terms.items():
        entry = catalog.get(english)
        assert entry is not None and entry.string == chinese, english
    # Everything with words in it is Chinese (ids, file formats and the like may stay; a
    # placeholder is not a word: "%(where)s: %(what)s" only changes its colon).
    english_only = [
        _msgid(m.id)
        for m in catalog
        if m.id
        and re.search(r"[a-z]{3}", PLACEHOLDER.sub("", _msgid(m.id)))
        and not HAN.search(_strings(m.string)[0])
    ]
    assert set(english_only) <= {"CSV", "XLSX (Excel, WPS)"}, english_only


def _messages(catalog: Catalog) -> dict[object, object]:
    # read_mo gives plural ids and strings as lists.
    def key(value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    return {key(m.id): key(m.string) for m in catalog if m.id}


def test_compiled_catalogue_matches_the_po() -> None:
    catalog = _catalog()
    fresh = BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    with open(MO, "rb") as f:
        committed = read_mo(f)
    expected = _messages(read_mo(fresh))
    actual = _messages(committed)
    stale = sorted(str(k) for k in expected.keys() ^ actual.keys())
    changed = sorted(str(k) for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    assert not stale and not changed, (
        "messages.mo is out of date; run `make translations` "
        f"(missing or extra: {stale[:5]}, changed: {changed[:5]})"
    )


@pytest.fixture
def runtime(rt: Runtime) -> Runtime:
    """The fixture world with the staff user reading Chinese, and a help card pressed."""
    with rt.sessions.begin() as s:
        s.execute(update(User).where(User.username == "staff").values(language="zh-CN"))
    # 07:40 in Shanghai is 23:40 UTC the day before: the page must show the local time.
    feed(rt, "zigbee2mqtt/card-301", {"action": "single"}, "07:40")
    return rt


def test_pages_speak_the_signed_in_users_language(runtime: Runtime) -> None:
    app = web_app(runtime)
    # Both clients' browsers ask for English (support.web): the user's own choice wins.
    zh = signed_in(app, "staff")
    en = signed_in(app, "admin")

    page = zh.get("/alerts/")
    assert page.status_code == 200
    html, text = page.get_data(as_text=True), visible(page)
    assert '<html lang="zh-CN">' in html
    assert "退出登录" in text and "待处理提醒" in text and "我去看看" in text
    assert "求助卡" in text and "3号楼 301室" in text
    assert "Sign out" not in text and "I'm going" not in text
    assert "11-23 07:40" in text and "11-22 23:40" not in text
    assert "2026-11-23 07:40" in visible(zh.get("/"))  # the header clock, community time

    page = en.get("/alerts/")
    html, text = page.get_data(as_text=True), visible(page)
    assert '<html lang="en">' in html
    assert "Sign out" in text and "Open alerts" in text and "I'm going" in text
    assert "Building 3, unit 301" in text and "11-23 07:40" in text
    assert not HAN.search(text.replace("中文", ""))  # only the language switch's label


def test_alert_details_speak_the_readers_language_in_community_time(runtime: Runtime) -> None:
    """What the engine says of an alert (help card, a silent sensor, a late curtain) in
    each user's language, times in the community's zone; the stored English text stays in
    UTC."""
    feed(runtime, "zigbee2mqtt/curtain-301", {"position": 0}, "06:30")
    advance(runtime, "09:16")  # the curtain stayed shut: missed
    feed(runtime, "zigbee2mqtt/curtain-301", {"position": 100}, "09:40")  # late
    with runtime.sessions() as s:
        late = s.scalars(select(Alert).where(Alert.kind == "missed_routine")).one()
    assert (late.outcome, late.note) == ("late", "curtain-301 open at 2026-11-23 01:40 UTC")
    feed(runtime, "zigbee2mqtt/door-301", {"contact": False, "battery": 80}, "07:40")
    assert isinstance(runtime.clock, SimulatedClock)
    runtime.clock.set(at("09:00", "2026-11-24"))  # the door has been silent 25 hours
    runtime.engine.check_devices()
    with runtime.sessions() as s:
        door = s.scalars(select(Alert).where(Alert.device_id == "door-301")).one()
    assert door.detail == "silent since 2026-11-22 23:40 UTC"
    app = web_app(runtime)

    zh = visible(signed_in(app, "staff").get("/alerts/"))
    assert "card-301 发出求助" in zh and "自 2026-11-23 07:40 起未再上报" in zh
    assert "shows help" not in zh and "silent since" not in zh

    en = signed_in(app, "admin")
    text = visible(en.get("/alerts/"))
    assert "card-301 shows help" in text and "silent since 2026-11-23 07:40" in text
    assert "silent since 2026-11-23 07:40" in visible(en.get(f"/alerts/{door.id}"))
    assert "curtain-301 open at 2026-11-23 09:40" in visible(en.get(f"/alerts/{late.id}"))
    zh_late = visible(signed_in(app, "staff").get(f"/alerts/{late.id}"))
    assert "curtain-301 于 2026-11-23 09:40 报告 open" in zh_late
    assert "01:40" not in zh_late


def test_language_switch_changes_the_pages_at_once(runtime: Runtime) -> None:
    client = signed_in(web_app(runtime), "staff")
    assert "今日" in visible(client.get("/"))
    resp = post_form(client, "/language", {"lang": "en", "next": "/"}, form_page="/")
    assert resp.status_code == 302
    text = visible(client.get("/"))
    assert "Today" in text and "今日" not in text
    post_form(client, "/language", {"lang": "zh_CN", "next": "/"}, form_page="/")
    assert "今日" in visible(client.get("/"))


@pytest.mark.parametrize(
    ("accept", "heading"),
    [
        ("en-GB,en;q=0.9", "Sign in"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "登录"),
        ("zh-TW,zh;q=0.9", "登录"),
        ("fr-FR,en;q=0.5", "Sign in"),
        (None, "登录"),  # no preference: the community's own language
    ],
)
def test_login_page_follows_the_browser(runtime: Runtime, accept: str | None, heading: str) -> None:
    client = web_app(runtime).test_client()
    # The shared test client asks for English unless told otherwise; this one is a browser.
    client.environ_base.pop("HTTP_ACCEPT_LANGUAGE", None)
    headers = {"Accept-Language": accept} if accept else {}
    page = client.get("/login", headers=headers)
    assert page.status_code == 200
    text = visible(page)
    assert heading in text
    other = "登录" if heading == "Sign in" else "Sign in"
    assert other not in text
