"""Trigger → result latency of the inspection station over OPC UA, with a real asyncua client as the
PLC / SCADA. Not a test; prints a Markdown table in bench/plc.py's layout.

    python -m bench.plc_opcua [--rate 20] [--triggers 400] [--fps 100,25] [--deadline-ms 200] [--poll-ms 1]
                              [--stall-triggers 10] [--channels none,secure] [--quick] [--work DIR]

The same run as bench/plc.py (the demo's line, elpv-mono, `patchline run --triggered` in a process of
its own on its test cells at a camera's pace), served with `--opcua` instead of `--modbus`. The client,
this process, writes true to `cam.Trigger` --rate times a second on a fixed schedule and reads
`ResultReady` and `Results` in one Read request every --poll-ms; per trigger, the time from just
before its write to the end of the first read that shows its result (then it writes `Acknowledge`).
`--channels none,secure` runs every pace twice: anonymous on a plain channel, and with the station's
`--opcua-cert` / `--opcua-key` / `--opcua-users` (Basic256Sha256 signed and encrypted, a user login;
certificates made with patchline's own make_certificate in the work folder), and prints the secure −
plain difference of the median latency with a 95 % bootstrap interval.
On a shared machine, take the benchmark lock (a BENCH_LOCK file in the temp folder) before running it.
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline import machine  # noqa: E402
from bench.plc import (Station, bench_arguments, bench_line, percentiles,  # noqa: E402  (shared with the Modbus
                       run_paces)                                          # bench: station, options, line, paces)


def table(rows: list[dict], rate: float, poll_ms: float) -> str:
    """The Markdown table of bench/plc.py, one row per run."""
    names = {(1, 0): "OK", (2, 0): "NG", (2, 1): "NG/deadline", (2, 2): "NG/camera", (2, 3): "NG/frame error"}

    def ms(value: float, tick: float) -> str:
        return "–" if value != value else f"> {tick:g}" if value == float("inf") else f"{value:.1f}"

    lines = ["| channel | camera | deadline | triggers | answered before the next tick | trigger → ResultReady p50 / p99 / max ms "
             "| chain p50 / p99 ms | overruns | deadline misses | late verdicts | answers |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat, ch, tick = r["latency"], r["chain"], 1000.0 / r["rate"]
        answers = ", ".join(f"{n} {names.get(k, str(k))}" for k, n in sorted(r["results"].items()))
        lines.append(f"| {r['channel']} | {r['fps']:g} frames/s | {r['deadline_ms']:g} ms | {r['triggers']} | {r['answered']} | "
                     f"{' / '.join(ms(lat[k], tick) for k in ('p50', 'p99', 'max'))} | {ms(ch['p50'], tick)} / "
                     f"{ms(ch['p99'], tick)} | {r['overruns']} | {r['misses']} | {r['late']} | {answers} |")
    return "\n".join(lines) + (f"\n\nClient: {rate:g} triggers/s on a fixed schedule, reading every {poll_ms:g} ms; a "
                               "trigger not answered before the next one's tick counts as longer than the tick "
                               "(> 1000 / rate ms) in the percentiles.")


async def _connect(port: int, login: dict | None = None):
    from asyncua import Client
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    deadline = time.monotonic() + 120
    while True:
        client = Client(f"opc.tcp://127.0.0.1:{port}", timeout=10)
        if login:  # signed and encrypted, as a user of the station's users file
            await client.set_security(SecurityPolicyBasic256Sha256, str(login["cert"]), str(login["key"]),
                                      server_certificate=str(login["server"]))
            client.set_user(login["user"])
            client.set_password(login["password"])
        try:
            await client.connect()
            return client
        except (OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise SystemExit(f"no OPC UA server on port {port}") from None
            await asyncio.sleep(0.2)


async def _drive(port: int, n: int, rate: float, poll_s: float, login: dict | None = None) -> list[dict]:
    """n triggers on a fixed schedule; per trigger its latency (ms, None when the next tick came first)."""
    from asyncua import ua

    from patchline.plc.opcua_nodes import NAMESPACE_URI

    client = await _connect(port, login)
    try:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        node = {name: client.get_node(ua.NodeId(f"cam.{name}", ns)) for name in
                ("Trigger", "Acknowledge", "ResultReady", "Results", "Result", "ErrorCode", "Alive", "Overruns",
                 "DeadlineMisses")}
        true = ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
        while not await node["Alive"].read_value():  # wait until frames flow
            await asyncio.sleep(0.05)
        watched = [node["ResultReady"], node["Results"], node["Result"], node["ErrorCode"]]
        records, start = [], time.perf_counter() + 0.5
        for k in range(n):
            tick = start + k / rate
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            before = await node["Results"].read_value()
            t0 = time.perf_counter()
            await node["Trigger"].write_value(true)
            record = {"latency_ms": None}
            while time.perf_counter() < start + (k + 1) / rate:
                ready, results, result, code = await client.read_values(watched)
                if ready and results != before:
                    record = {"latency_ms": (time.perf_counter() - t0) * 1000.0, "result": result, "error_code": code}
                    await node["Acknowledge"].write_value(true)
                    break
                await asyncio.sleep(poll_s)
            records.append(record)
        await asyncio.sleep(0.5)
        final = dict(zip(("overruns", "deadline_misses"),
                         await client.read_values([node["Overruns"], node["DeadlineMisses"]])))
        records.append({"final": final})
        return records
    finally:
        await client.disconnect()


class OpcUaPlc:
    """bench/plc.py's measure() with the OPC UA server and client in place of Modbus."""

    def __init__(self, args, channel: str = "none"):
        self.args, self.channel = args, channel
        self.options, self.login = [], None
        if channel == "secure":
            from patchline.dashboard.auth import add_user
            from patchline.plc.opcua_security import make_certificate

            keys = args.work / "opcua-keys"
            server_cert, server_key = make_certificate(keys / "station", "127.0.0.1")
            cert, key = make_certificate(keys / "client", "127.0.0.1")
            add_user(keys / "users", "bench", "bench-password")
            self.options = ["--opcua-cert", str(server_cert), "--opcua-key", str(server_key),
                            "--opcua-users", str(keys / "users")]
            self.login = {"cert": cert, "key": key, "server": server_cert, "user": "bench", "password": "bench-password"}

    def measure(self, pipeline: Path, cells: Path, line: str, banks: Path, fps: float, deadline_ms: float,
                triggers: int) -> dict:
        from collections import Counter

        from patchline.mqtt.local_broker import free_port

        port = free_port()
        cmd = [sys.executable, "-m", "patchline", "run", str(pipeline), "--source", str(cells), "--loop", "--fps",
               f"{fps:g}", "--camera", "cam", "--line", line, "--banks", str(banks), "--opcua",
               f"opc.tcp://127.0.0.1:{port}", "--triggered", "--deadline-ms", f"{deadline_ms:g}", *self.options]
        station = Station(cmd, self.args.work / f"plc-opcua-station-{self.channel}-{fps:g}.log")
        try:
            records = asyncio.run(_drive(port, triggers, self.args.rate, self.args.poll_ms / 1000.0, self.login))
        finally:
            station.stop()
        final = records.pop()["final"]
        answered = [r for r in records if r["latency_ms"] is not None]
        chain = [p[0]["latency_ms"] for p in station.by_trigger.values() if p and p[0].get("latency_ms") is not None]
        latencies = [float("inf") if r["latency_ms"] is None else r["latency_ms"] for r in records]
        return {"channel": self.channel, "latencies": latencies,
                "fps": fps, "rate": self.args.rate, "deadline_ms": deadline_ms, "triggers": len(records),
                "answered": len(answered), "latency": percentiles(latencies), "chain": percentiles(chain),
                "overruns": final["overruns"], "misses": final["deadline_misses"],
                "results": Counter((r["result"], r["error_code"]) for r in answered),
                "late": sum(1 for p in station.by_trigger.values() for q in p if q.get("late"))}


def median_difference(secure: list[float], plain: list[float], draws: int = 2000) -> tuple[float, float, float]:
    """(secure − plain median latency, 95 % bootstrap interval) in ms; triggers answered after the next
    tick count as +inf, as in the percentiles."""
    rng = np.random.default_rng(0)
    a, b = np.asarray(secure, dtype=np.float64), np.asarray(plain, dtype=np.float64)
    if not (np.isfinite(np.median(a)) and np.isfinite(np.median(b))):
        return float("nan"), float("nan"), float("nan")  # over half the triggers answered after the next tick
    with np.errstate(invalid="ignore"):
        diffs = np.array([np.median(rng.choice(a, len(a))) - np.median(rng.choice(b, len(b))) for _ in range(draws)])
    return float(np.median(a) - np.median(b)), *(float(q) for q in np.nanquantile(diffs, [0.025, 0.975]))


def main(argv=None) -> int:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--channels", default="none", help="none and / or secure, comma-separated (default none)")
    known, rest = extra.parse_known_args(argv)
    channels = [c for c in known.channels.split(",") if c]
    if not channels or set(channels) - {"none", "secure"}:
        extra.error("--channels takes none and / or secure")
    args = bench_arguments(rest, __doc__.splitlines()[0], "the client's")
    line, banks, cells, pipeline = bench_line(args)
    rows = []
    for channel in channels:
        bench = OpcUaPlc(args, channel)
        rows += run_paces(lambda fps, deadline, n: bench.measure(pipeline, cells, line, banks, fps, deadline, n), args)
    print(f"bench.plc_opcua on {machine()}; line {line} ({pipeline.name}), {len(list(cells.iterdir()))} test "
          "cells looped; the client is an asyncua Client writing Trigger and reading ResultReady / Results\n")
    print(table(rows, args.rate, args.poll_ms))
    print("\nThe last row of each channel (if any) is the stalled camera: a frame every 2 s, a 50 ms deadline, one "
          "trigger a second.")
    if set(channels) == {"none", "secure"}:
        print("\n| camera | secure − none, median trigger → ResultReady ms [95 % bootstrap] |\n|---|---|")
        for fps in dict.fromkeys(r["fps"] for r in rows):
            pair = {r["channel"]: r["latencies"] for r in rows if r["fps"] == fps}
            diff, low, high = median_difference(pair["secure"], pair["none"])
            print(f"| {fps:g} frames/s | " + ("– (a median beyond the next tick)" if diff != diff else
                                             f"{diff:+.1f} [{low:+.1f}, {high:+.1f}]") + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
