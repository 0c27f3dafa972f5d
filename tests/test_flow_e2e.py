"""Issue 3's whole flow through real parts: a real Mosquitto, the real database, the phone
page over the app's test client, and a local HTTP receiver for the push service.
Missed curtain -> volunteer notified -> claim via the link -> resolve -> the family's digest
that evening tells how it ended."""

from __future__ import annotations

import json
import re

import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.receiver import receiver
from support.watch import alerts, local

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from web.app import create_app

pytestmark = pytest.mark.broker
DAY = "2026-11-23"


def test_missed_curtain_to_family_digest(db_url: str, broker: MosquittoBroker) -> None:
    with receiver() as rx:
        clock = SimulatedClock(local(DAY, "06:00"))
        rt = Runtime(
            Settings(
                database_url=db_url,
                mqtt_host=broker.host,
                mqtt_port=broker.port,
                mqtt_client_id="cw-e2e",
                base_url="https://cw.example",
            ),
            clock,
        )
        rt.import_community(f"""
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices: [{{id: curtain-301, kind: curtain}}]
    routines: [{{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}}]
people:
  - {{id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], language: en,
      notify: ["{rx.url("v-li")}"]}}
  - {{id: f-wang, name: Wang Jun, role: family, resident: r-301, consent: "2026-11-20",
      language: en, digest: "20:00", notify: ["{rx.url("f-wang")}"]}}
""")
        rt.start(schedule=False)
        try:
            assert rt.source is not None and rt.source.connected.wait(10)
            publish_many(
                broker.host,
                broker.port,
                [("zigbee2mqtt/curtain-301", json.dumps({"position": 0, "battery": 96}))],
            )
            wait_for(lambda: rt.ingestor.stats.messages >= 1)

            clock.set(local(DAY, "09:15"))  # the curtain stayed shut
            rt.engine.settle_due()
            rt.notify()
            [msg] = rx.to("v-li")
            assert msg["title"] == "Wang Shulan (3-301): curtain not opened"
            link = re.search(r"https://cw\.example(/m/\S+)", msg["message"])
            assert link is not None

            client = create_app(rt).test_client()
            page = client.get(link.group(1))
            assert page.status_code == 200 and "Wang Shulan" in page.get_data(as_text=True)
            form = re.search(r'name="form_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
            assert form is not None
            clock.set(local(DAY, "09:17"))
            assert (
                client.post(
                    f"{link.group(1)}/claim", data={"form_token": form.group(1)}
                ).status_code
                == 303
            )
            clock.set(local(DAY, "09:40"))
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

            clock.set(local(DAY, "20:00"))
            rt.notify()
            [digest] = rx.to("f-wang")
            assert digest["title"] == "Wang Shulan 11-23"
            assert (
                "09:15 curtain not opened: Li Ming went: all fine (overslept)"
                in digest["message"].splitlines()
            )
            assert len(rx.to("v-li")) == 1  # nothing repeated
        finally:
            rt.stop()
