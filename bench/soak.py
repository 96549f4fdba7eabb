"""Soak: the ELPV mono line streaming its real test cells in a loop, with a broker restart.

    python bench/soak.py [--minutes 10] [--work DIR (default: <temp dir>/patchline-bench)]

The line is trained as configured (bench/pipeline.py's cache is reused), the cells go round and
round through `patchline run`'s own code (run_pipeline with --loop, pipeline/elpv_mono.pipeline) at full
speed into a real Mosquitto (persistence on); halfway the broker is stopped for `--outage` seconds and
started again; at the end the run is stopped with SIGINT, as an operator stops it. An alarm logger with
a persistent session listens throughout. Prints one table: frames in, results, verdicts and alarms the
broker acknowledged, alarms received (de-duplicated by frame_id), what was not delivered, and the
process's RSS at the start (after a warm-up) and at the end.
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
    ap.add_argument("--quick", action="store_true", help="check the script: a third of the cells (not for figures)")
    args = ap.parse_args(argv)

    import os
    import signal

    from pipeline import CONFIGURED, banks_for, export_models, machine, test_cells, train_real_line

    from patchline.app.demo import LocalBroker
    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import run_settings
    from patchline.mqtt.broker import BrokerSettings
    from patchline.mqtt.payload import decode_object
    from patchline.mqtt.subscriber import Subscriber
    from patchline.mqtt.topics import camera_filter

    work = args.work.resolve()
    (work / "models").mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    export_models("efficientnet_lite0", 224, work / "models")
    line, _ = train_real_line("mono", work, quick=args.quick)
    cells = test_cells(work, "mono", args.quick)
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
    delivered = {"verdict": 0, "alarm": 0}
    held = {}

    def on_delivered(topic: str, _data: bytes) -> None:
        kind = topic.rsplit("/", 1)[-1]
        if kind in delivered:
            with lock:
                delivered[kind] += 1

    def post_process():
        stream = next(iter(held["manager"].streams.values()))
        return stream, stream.nodes["mxpi_classpostprocessor0"]

    def script() -> None:
        """Warm-up, the outage halfway, and at the end SIGINT, as an operator stops `patchline run`."""
        while "manager" not in held or post_process()[1].processed < 200:
            time.sleep(0.2)
        held["rss_start"] = rss_mb()
        while time.monotonic() < began + args.minutes * 30.0:
            time.sleep(1)
        broker.close()
        print(f"broker stopped at {time.monotonic() - began:.0f} s", file=sys.stderr)
        time.sleep(args.outage)
        broker.start()
        print(f"broker started at {time.monotonic() - began:.0f} s", file=sys.stderr)
        while time.monotonic() < began + args.minutes * 60.0:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGINT)

    began = time.monotonic()
    threading.Thread(target=script, daemon=True).start()
    # `patchline run` itself (its run_pipeline): the cells in a loop (--loop), the alarm spool, the
    # publisher's reconnects; on SIGINT the frames in flight finish and the publisher gets 120 s to deliver
    run_pipeline(run_settings(ROOT / "pipeline" / "elpv_mono.pipeline", str(cells), broker.url, camera="cam",
                              line=line, banks_root=banks_for(work, CONFIGURED, args.quick), spool_dir=spool,
                              loop_folder=True, publish_timeout=120.0),
                 on_delivered=on_delivered, on_start=lambda manager: held.update(manager=manager))
    seconds = time.monotonic() - began
    time.sleep(2)  # the last alarms reach the logger
    logger.close()
    broker.close()
    rss_end = rss_mb()
    stream, post = post_process()
    stats = stream.stats()
    frames_in, results = stats["frames_in"], post.processed
    duplicates = sum(n - 1 for n in received.values())
    print(f"\nSoak: elpv-mono ({len(list(cells.iterdir()))} test cells in a loop) through `patchline run`'s own code "
          f"(run_pipeline, pipeline/elpv_mono.pipeline, --loop) → a real Mosquitto (persistence on), broker down for "
          f"{args.outage:.0f} s halfway; {machine()}.\n")
    print("| minutes | frames in | results | frames/s | verdicts delivered (PUBACK) | alarms delivered (PUBACK) | "
          "verdicts not delivered | alarms received (unique) | duplicates | errors | RSS start MB | RSS end MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {seconds / 60:.1f} | {frames_in} | {results} | {results / seconds:.1f} | {delivered['verdict']} | "
          f"{delivered['alarm']} | {results - delivered['verdict']} | {len(received)} | {duplicates} | "
          f"{sum(stats['element_errors'].values())} | {held.get('rss_start', float('nan')):.0f} | "
          f"{rss_end:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
