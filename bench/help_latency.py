"""Help card -> phone: the time from publishing a help-card flip to Mosquitto until the
volunteer's notification arrives at a local HTTP receiver (standing in for the push
service), over N trials. Each trial is a different resident, so each is a new alert.
Prints p50/p95/p99/max; the issue's target is p99 <= 1 s."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mqtt import MosquittoBroker, find_mosquitto, publish_many  # noqa: E402
from support.receiver import receiver  # noqa: E402

from curtainwatch.runtime import Runtime  # noqa: E402
from monitor.clock import SystemClock  # noqa: E402
from monitor.config import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    binary = find_mosquitto()
    if binary is None:
        print("mosquitto is not installed (apt-get install mosquitto)")
        return 1
    with tempfile.TemporaryDirectory() as tmp, receiver() as rx:
        broker = MosquittoBroker(binary, Path(tmp) / "broker").start()
        homes = "".join(
            f"""
  - {{id: r-{i}, name: Resident {i}, building: "1", unit: "{i}",
      devices: [{{id: card-{i}, kind: help}}]}}"""
            for i in range(args.trials)
        )
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_client_id="cw-bench-latency",
        )
        rt = Runtime(settings, SystemClock())
        rt.import_community(f"""
timezone: Asia/Shanghai
residents:{homes}
people:
  - {{id: v, name: V, role: volunteer, buildings: ["1"], language: en,
      notify: ["{rx.url("v")}"]}}
""")
        rt.start()
        try:
            assert rt.source is not None and rt.source.connected.wait(10)
            time.sleep(1.0)
            latencies = []
            for i in range(args.trials):
                sent = time.monotonic()
                publish_many(
                    broker.host, broker.port, [(f"zigbee2mqtt/card-{i}", '{"contact": false}')]
                )
                deadline = sent + 30
                while len(rx.to("v")) <= i and time.monotonic() < deadline:
                    time.sleep(0.002)
                if len(rx.to("v")) <= i:
                    print(f"trial {i}: no notification within 30 s")
                    return 1
                latencies.append(time.monotonic() - sent)
        finally:
            rt.stop()
            broker.stop()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"help card -> phone over {len(latencies)} trials: p50 {q[49] * 1000:.0f} ms, "
        f"p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (target p99 <= 1000 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
