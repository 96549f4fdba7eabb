"""Trigger → result latency of the inspection station over Modbus TCP, with a real pymodbus client as
the PLC. Not a test; prints a Markdown table.

    python -m bench.plc [--rate 20] [--triggers 400] [--fps 100,25] [--deadline-ms 200] [--poll-ms 1]
                        [--stall-triggers 10] [--quick] [--work DIR (default: the patchline-bench folder in the temp dir)]

The demo's line (elpv-mono, trained as configs/elpv.yaml says, through pipeline/elpv_mono.pipeline,
bench/pipeline.py's helpers) runs triggered (`patchline run --triggered --modbus` in a process of its
own, as a plant runs it) on its test cells read from a folder at a camera's pace (--fps; each value
is a run). The PLC, this process (another process, as a PLC is another device), writes the trigger register
--rate times a second on a fixed schedule and polls the camera's block every --poll-ms; per trigger,
the time from just before its trigger write to the end of the first read that shows result_ready for
it (then it writes acknowledge). A trigger whose answer has not come by the next tick is written anyway:
the station refuses it as an overrun (counted in its register and printed). Beside the latency: the
chain's own part (the verdict's latency_ms: from the frame entering the stream to its verdict), the
answers by their result code, deadline misses and late verdicts. Then a stalled camera: the same line
with frames 2 s apart and a 50 ms deadline; every trigger must be answered NG with an error code.
On a shared machine, take the benchmark lock (a BENCH_LOCK file in the temp folder) before running it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.pipeline import (CONFIGURED, banks_for, line_pipeline, machine, spread, test_cells,  # noqa: E402
                            train_real_line)


def percentiles(values_ms: list[float]) -> dict:
    """p50 / p99 / max, each an observed value (numpy's 'higher' method: no interpolation toward +inf)."""
    v = np.asarray(values_ms, dtype=np.float64)
    if not len(v):
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": int(len(v)), "p50": float(np.percentile(v, 50, method="higher")),
            "p99": float(np.percentile(v, 99, method="higher")), "max": float(v.max())}


class Station:
    """`patchline run … --modbus --triggered` as its own process (the PLC, this process, shares no GIL with
    it); its stdout's JSON verdict lines (the run prints them when nothing is published) kept by trigger."""

    def __init__(self, cmd: list[str], log: Path):
        import subprocess

        self.by_trigger: dict[int, list[dict]] = {}
        self.lock = threading.Lock()
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, stdin=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        import json

        for row in self.proc.stdout:
            if row.startswith("{"):
                payload = json.loads(row)
                if "trigger" in payload:
                    with self.lock:
                        self.by_trigger.setdefault(payload["trigger"], []).append(payload)

    def stop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)
        if self.proc.returncode not in (0, -2):
            raise SystemExit(f"the station ended with {self.proc.returncode}: {self.log.read_text()[-2000:]}")


def plc_client(port: int):
    import logging

    from pymodbus.client import ModbusTcpClient

    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    deadline = time.monotonic() + 120
    while not client.connect():
        if time.monotonic() > deadline:
            raise SystemExit(f"no Modbus server on port {port}")
        time.sleep(0.05)
    return client


def drive(client, n: int, rate: float, poll_s: float) -> list[dict]:
    """The PLC: n triggers on a fixed schedule at `rate`/s; per trigger its latency (ms, None when the
    next tick came first) and the registers read at result_ready."""
    from patchline.plc.modbus import ACKNOWLEDGE, BLOCK, NAMES, TRIGGER

    def regs():
        return dict(zip(NAMES, client.read_holding_registers(0, count=BLOCK, device_id=1).registers))

    while not regs()["status"] & 1:  # wait until frames flow
        time.sleep(0.05)
    records, start = [], time.perf_counter() + 0.5
    for k in range(n):
        tick = start + k / rate
        while time.perf_counter() < tick:
            time.sleep(min(poll_s, max(0.0, tick - time.perf_counter())))
        before = regs()["results"]
        t0 = time.perf_counter()
        client.write_register(TRIGGER, 1, device_id=1)
        record = {"latency_ms": None}
        while time.perf_counter() < start + (k + 1) / rate:
            r = regs()
            if r["result_ready"] and r["results"] != before:
                record = {"latency_ms": (time.perf_counter() - t0) * 1000.0, **r}
                client.write_register(ACKNOWLEDGE, 1, device_id=1)
                break
            time.sleep(poll_s)
        records.append(record)
    time.sleep(0.5)
    records.append({"final": regs()})
    return records


def measure(pipeline: Path, cells: Path, line: str, banks: Path, fps: float, args, deadline_ms: float,
            triggers: int) -> dict:
    """One triggered run of `line` at `fps` (`patchline run` in its own process), driven by the PLC; its row."""
    from patchline.mqtt.local_broker import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "patchline", "run", str(pipeline), "--source", str(cells), "--loop", "--fps", f"{fps:g}",
           "--camera", "cam", "--line", line, "--banks", str(banks), "--modbus", f"127.0.0.1:{port}", "--triggered",
           "--deadline-ms", f"{deadline_ms:g}"]
    station = Station(cmd, args.work / f"plc-station-{fps:g}.log")
    try:
        client = plc_client(port)
        try:
            records = drive(client, triggers, args.rate, args.poll_ms / 1000.0)
        finally:
            client.close()
    finally:
        station.stop()
    final = records.pop()["final"]
    answered = [r for r in records if r["latency_ms"] is not None]
    chain = [p[0]["latency_ms"] for p in station.by_trigger.values() if p and p[0].get("latency_ms") is not None]
    results = Counter((r["result"], r["error_code"]) for r in answered)
    # a trigger not answered before the next tick took longer than the tick: +inf in the percentiles
    latencies = [float("inf") if r["latency_ms"] is None else r["latency_ms"] for r in records]
    return {"fps": fps, "rate": args.rate, "deadline_ms": deadline_ms, "triggers": len(records),
            "answered": len(answered), "latency": percentiles(latencies), "chain": percentiles(chain),
            "overruns": final["overruns"], "misses": final["deadline_misses"], "results": results,
            "late": sum(1 for p in station.by_trigger.values() for q in p if q.get("late"))}


def results_text(results: Counter) -> str:
    names = {(1, 0): "OK", (2, 0): "NG", (2, 1): "NG/deadline", (2, 2): "NG/camera", (2, 3): "NG/frame error"}
    return ", ".join(f"{n} {names.get(k, str(k))}" for k, n in sorted(results.items()))


def ms(value: float, tick_ms: float) -> str:
    """A latency in ms; '> tick' for one beyond the next trigger's tick, '–' when there is none."""
    if value != value:
        return "–"
    return f"> {tick_ms:g}" if value == float("inf") else f"{value:.1f}"


def table(rows: list[dict], rate: float, poll_ms: float) -> str:
    head = ("| camera | deadline | triggers | answered before the next tick | trigger → result_ready p50 / p99 / max ms "
            "| chain p50 / p99 ms | overruns | deadline misses | late verdicts | answers |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lat, ch = r["latency"], r["chain"]
        tick = 1000.0 / r["rate"]
        lines.append(f"| {r['fps']:g} frames/s | {r['deadline_ms']:g} ms | {r['triggers']} | {r['answered']} | "
                     f"{' / '.join(ms(lat[k], tick) for k in ('p50', 'p99', 'max'))} | "
                     f"{ms(ch['p50'], tick)} / {ms(ch['p99'], tick)} | "
                     f"{r['overruns']} | {r['misses']} | {r['late']} | {results_text(r['results'])} |")
    return "\n".join(lines) + (f"\n\nPLC: {rate:g} triggers/s on a fixed schedule, polling every {poll_ms:g} ms; a "
                               "trigger not answered before the next one's tick counts as longer than the tick "
                               "(> 1000 / rate ms) in the percentiles.")


def bench_arguments(argv, description: str, poller: str) -> argparse.Namespace:
    """The PLC benches' shared options (rate, triggers, camera paces, deadline, polling, the stalled
    camera, work folder, --quick); `poller`: who polls, for --poll-ms's help."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rate", type=float, default=20.0, help="triggers per second (default 20)")
    ap.add_argument("--triggers", type=int, default=400, help="triggers per run (default 400)")
    ap.add_argument("--fps", default="100,25", help="camera paces to run, frames/s, comma-separated (default 100,25)")
    ap.add_argument("--deadline-ms", type=float, default=200.0)
    ap.add_argument("--poll-ms", type=float, default=1.0, help=f"{poller} polling period (default 1 ms)")
    ap.add_argument("--stall-triggers", type=int, default=10, help="triggers at the stalled camera (0: none)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-bench")
    ap.add_argument("--quick", action="store_true", help="the demo's third of the cells, 40 triggers: checks the script")
    args = ap.parse_args(argv)
    if args.quick:
        args.triggers, args.stall_triggers = min(args.triggers, 40), min(args.stall_triggers, 3)
    return args


def bench_line(args) -> tuple[str, Path, Path, Path]:
    """(line, banks root, folder of test cells to loop, pipeline file) of the real ELPV mono line the
    PLC benches run, trained under args.work (which becomes the working directory)."""
    import os

    work = args.work = args.work.resolve()
    (work / "models").mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # model paths in pipeline files are relative to the working directory
    line, _ = train_real_line("mono", work, quick=args.quick)
    banks = banks_for(work, CONFIGURED, args.quick)
    cells = spread(test_cells(work, "mono", args.quick), 260, work)
    return line, banks, cells, line_pipeline(CONFIGURED, None, line, work)


def run_paces(measure_one, args) -> list[dict]:
    """measure_one(fps, deadline_ms, triggers) → one row, at each --fps pace, then (unless
    --stall-triggers 0) at the stalled camera: a frame every 2 s, a 50 ms deadline, one trigger a second."""
    rows = [measure_one(float(f), args.deadline_ms, args.triggers) for f in args.fps.split(",") if f]
    if args.stall_triggers:
        saved, args.rate = args.rate, 1.0  # one trigger a second: each one waits for its answer
        rows.append(measure_one(0.5, 50.0, args.stall_triggers))
        args.rate = saved
    return rows


def main(argv=None) -> int:
    args = bench_arguments(argv, __doc__.splitlines()[0], "the PLC's")
    line, banks, cells, pipeline = bench_line(args)
    rows = run_paces(lambda fps, deadline, n: measure(pipeline, cells, line, banks, fps, args, deadline, n), args)
    print(f"bench.plc on {machine()}; line {line} ({pipeline.name}), {len(list(cells.iterdir()))} test cells looped\n")
    print(table(rows, args.rate, args.poll_ms))
    print("\nThe last row (if any) is the stalled camera: a frame every 2 s, a 50 ms deadline, one trigger a second.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
