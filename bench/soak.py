"""Soak: the ELPV mono line streaming its real test cells in a loop, with a broker restart.

    python bench/soak.py [--minutes 10] [--work DIR (default: <temp dir>/patchline-bench)]

The line is trained as configured (bench/pipeline.py's cache is reused), the cells go round and
round through pipeline/elpv_mono.pipeline at full speed into a real Mosquitto (persistence on);
halfway the broker is stopped for `--outage` seconds and started again. An alarm logger with a
persistent session listens throughout. Prints one table: frames in, verdicts out, alarms sent
and received (de-duplicated by frame_id), what was dropped, and the process's RSS at the start
(after a warm-up) and at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc)."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024.0
    return float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--outage", type=float, default=15.0, help="seconds the broker is down, halfway")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-bench")
    args = ap.parse_args(argv)

    import os

    from pipeline import export_models, test_cells, train_real_line

    from patchline.app.demo import LocalBroker
    from patchline.mqtt.broker import BrokerSettings
    from patchline.mqtt.payload import decode_object
    from patchline.mqtt.publisher import Publisher
    from patchline.mqtt.subscriber import Subscriber
    from patchline.mqtt.topics import camera_filter
    from patchline.pipeline.config import load_pipeline
    from patchline.pipeline.streams import StreamManager

    work = args.work.resolve()
    (work / "models").mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    export_models("efficientnet_lite0", 224, work / "models")
    line, _ = train_real_line("mono", work)
    cells = test_cells(work, "mono")
    (work / "soak").mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(work / "soak", persistence=True)
    received: dict[int, int] = {}
    lock = threading.Lock()

    def on_alarm(_topic: str, raw: bytes, _retained: bool) -> None:
        payload = decode_object(raw)
        if payload is not None:
            with lock:
                received[payload["frame_id"]] = received.get(payload["frame_id"], 0) + 1

    settings = BrokerSettings.from_url(broker.url)
    logger = Subscriber(settings, camera_filter(line, "alarm"), on_alarm, client_id="soak-alarm-logger",
                        persistent_session=True).start()
    spool = work / "soak" / "spool"
    shutil.rmtree(spool, ignore_errors=True)
    publisher = Publisher(settings, line, ["cam"], spool, max_verdicts=100000)
    publisher.start()
    counts = {"results": 0, "defects": 0, "errors": 0}

    def on_result(payload: dict) -> None:
        publisher.publish_result({**payload, "line": line})
        with lock:
            counts["results"] += 1
            counts["defects"] += payload.get("verdict") == "defect"
            counts["errors"] += payload.get("verdict") == "error"

    config = load_pipeline(ROOT / "pipeline" / "elpv_mono.pipeline")
    manager = StreamManager(config, str(cells), "cam", {"banks_root": str(work / "banks"), "line": line,
                                                         "loop_folder": True}, on_result)
    began = time.monotonic()
    manager.start()
    while counts["results"] < 200:
        time.sleep(0.2)
    rss_start = rss_mb()
    half = began + args.minutes * 30.0
    while time.monotonic() < half:
        time.sleep(1)
    broker.close()
    print(f"broker stopped at {time.monotonic() - began:.0f} s", file=sys.stderr)
    time.sleep(args.outage)
    broker.start()
    print(f"broker started at {time.monotonic() - began:.0f} s", file=sys.stderr)
    while time.monotonic() < began + args.minutes * 60.0:
        time.sleep(1)
    manager.stop()
    manager.wait(60)
    manager.close()
    seconds = time.monotonic() - began
    delivered_all = publisher.wait_idle(120)
    stats = publisher.stats()
    publisher.close(10)
    time.sleep(2)  # the last alarms reach the logger
    logger.close()
    broker.close()
    rss_end = rss_mb()
    frames_in = manager.streams[next(iter(manager.streams))].stats()["frames_in"]
    duplicates = sum(n - 1 for n in received.values())
    print(f"\nSoak: elpv-mono ({len(list(cells.iterdir()))} test cells in a loop) through pipeline/elpv_mono.pipeline "
          f"→ a real Mosquitto (persistence on), broker down for {args.outage:.0f} s halfway; 2 CPU cores.\n")
    print("| minutes | frames in | results | frames/s | messages delivered (verdicts + alarms) | verdicts dropped | alarms sent | "
          "alarms received (unique) | duplicates | errors | RSS start MB | RSS end MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {seconds / 60:.1f} | {frames_in} | {counts['results']} | {counts['results'] / seconds:.1f} | "
          f"{stats['delivered']} | {stats['dropped_verdicts']} | {counts['defects']} | {len(received)} | "
          f"{duplicates} | {counts['errors']} | {rss_start:.0f} | {rss_end:.0f} |")
    if not delivered_all:
        print("(the publisher had not delivered everything within 120 s of the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
