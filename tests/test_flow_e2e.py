"""Issue 3's whole flow through real parts: a real Mosquitto, the real database, the phone
page over the app's test client, and a local HTTP receiver for the push service.
Missed curtain -> volunteer notified -> claim via the link -> resolve -> the family's digest
that evening tells how it ended."""

from __future__ import annotations

import json
import re

import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.receiver import Receiver
from support.watch import alerts
from support.world import CURTAIN_OPEN, World, advance, community, on_broker, person, resident

from web.app import create_app

pytestmark = pytest.mark.broker


def test_missed_curtain_to_family_digest(
    db_url: str, broker: MosquittoBroker, rx: Receiver
) -> None:
    text = community(
        residents=[resident(devices=("curtain",), routines=[CURTAIN_OPEN])],
        people=[person("v-li"), person("f-wang", digest="20:00")],
        escalation=None,
        notify=rx.url,
    )
    settings = on_broker(broker, "cw-e2e", base_url="https://cw.example")
    rt = World(text, users=False, settings=settings).runtime(db_url)
    rt.start(schedule=False)
    try:
        assert rt.source is not None and rt.source.connected.wait(10)
        publish_many(
            broker.host,
            broker.port,
            [("zigbee2mqtt/curtain-301", json.dumps({"position": 0, "battery": 96}))],
        )
        wait_for(lambda: rt.ingestor.stats.messages >= 1)

        advance(rt, "09:15")  # the curtain stayed shut
        [msg] = rx.to("v-li")
        assert msg["title"] == "Wang Shulan (3-301): curtain not opened"
        link = re.search(r"https://cw\.example(/m/\S+)", msg["message"])
        assert link is not None

        client = create_app(rt).test_client()
        page = client.get(link.group(1))
        assert page.status_code == 200 and "Wang Shulan" in page.get_data(as_text=True)
        form = re.search(r'name="form_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
        assert form is not None
        advance(rt, "09:17", jobs=())
        assert (
            client.post(f"{link.group(1)}/claim", data={"form_token": form.group(1)}).status_code
            == 303
        )
        advance(rt, "09:40", jobs=())
        assert (
            client.post(
                f"{link.group(1)}/resolve",
                data={"form_token": form.group(1), "outcome": "fine", "note": "overslept"},
            ).status_code
            == 303
        )
        [a] = alerts(rt)
        assert (a.status, a.claimed_by, a.resolved_by, a.outcome) == (
            "resolved",
            "v-li",
            "v-li",
            "fine",
        )

        advance(rt, "20:00")
        [digest] = rx.to("f-wang")
        assert digest["title"] == "Wang Shulan 11-23"
        assert (
            "09:15 curtain not opened: Li Ming went: all fine (overslept)"
            in digest["message"].splitlines()
        )
        assert len(rx.to("v-li")) == 1  # nothing repeated
    finally:
        rt.stop()
