"""Pipeline speed as two numbers, both through `patchline run`'s own code (patchline.app.run.run_pipeline,
called as patchline/cli.py calls it) with a real Mosquitto on loopback. Not a test; prints Markdown tables.

    python -m bench.pipeline [--lines mono,poly] [--line-config FILE …] [--skip-configured] [--no-exact]
                             [--fps 25] [--latency-frames 260] [--warmup 10] [--rounds 1] [--max-batch N]
                             [--backbones efficientnet_lite0,wide_resnet50_2] [--sizes 224,320] [--frames 300]
                             [--threads N] [--quick] [--work DIR (default: a patchline-bench folder in the temp dir)]

1. Latency of one frame alone: the line's test cells (an even spread of good and defective ones) read from
   a folder at a camera's pace (`patchline run --fps`, default 25 frames/s), so nothing else is queued;
   per frame, from the frame entering the source (its file read) to the broker's PUBACK of its verdict
   (QoS 1, heard through run_pipeline's on_delivered hook), p50 / p99 / max; beside it, the same frame's
   arrival at an independent subscriber (another process, same machine, same monotonic clock).
2. Throughput of delivered verdicts with the machine full: every test cell as fast as the stream takes
   it; an independent paho subscriber in another process counts the verdicts it receives, from the
   first to the last (start-up excluded); frames in, delivered and dropped are printed.

Each run prints the batch sizes the batching elements actually took (mean frames per call, beside their
cap) and CPU ms per frame: this process's CPU time (every thread: pipeline, publisher, paho) over the
frames, between the first and the last PUBACK (and over the whole run, start-up included); the broker and
the subscriber run in other processes and are not counted. Cores come from the process's CPU affinity;
sizes, layers, coreset, calibration and folds from the bank.json each run loaded.

Real lines first: elpv-mono / elpv-poly trained as configs/elpv.yaml says (and, with --line-config, as
another line config says, e.g. one `patchline tune` wrote); a bank with a graph index is also searched
exactly (throughput only; --no-exact skips it). --quick: the demo's third of the ELPV cells, 30 paced
frames, for checking the script (minutes), not for figures. Then synthetic rows (--backbones '' for
none): models exported once (`patchline export` in a subprocess), banks of realistic size (1 % coreset of
a 250-image line) on 360 × 360 texture frames, the bare model forward beside the pipeline's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/pipeline.py` from anywhere
    sys.path.insert(0, str(ROOT))
RESIZE = {224: 256, 320: 336}
LINE_IMAGES = 250  # the bank size of a line trained on this many images at coreset ratio 1 %
BANK_IMAGES = 16
FRAME_SIZE = 360
CONFIGURED = ROOT / "configs" / "elpv.yaml"


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def machine() -> str:
    """'N cores (CPU affinity) of <model>' for the tables' heading."""
    model = next((row.split(":", 1)[1].strip() for row in Path("/proc/cpuinfo").read_text().splitlines()
                  if row.startswith("model name")), "an unknown CPU")
    extra = f"; os.cpu_count() {os.cpu_count()}, which sizes the pipeline's model workers" \
        if os.cpu_count() != cores() else ""
    return f"{cores()} cores (CPU affinity) of {model}{extra}"


# --- the independent subscriber (its own process) ------------------------------------------------

def subscriber_child(url: str, topic: str) -> None:
    """Subscribe (paho, QoS 1), print 'ready' once subscribed, note the monotonic time of every message
    until stdin closes, then print them as one JSON list: [time, payload text]."""
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt

    got = []
    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-counter-{os.getpid()}")
    client.on_connect = lambda c, userdata, flags, reason, props: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda c, userdata, mid, reasons, props: print("ready", flush=True)
    client.on_message = lambda c, userdata, msg: got.append((time.monotonic(), msg.payload))
    client.connect(parts.hostname, parts.port or 1883)
    client.loop_start()
    sys.stdin.read()
    client.loop_stop()
    client.disconnect()
    print(json.dumps([[t, raw.decode()] for t, raw in got]))


class Counter:
    """A subscriber process counting the verdicts of `line` as they arrive."""

    def __init__(self, broker_url: str, line: str):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--subscriber", broker_url,
                                      f"patchline/{line}/+/verdict"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the counting subscriber did not start")

    def finish(self) -> list[tuple[float, dict]]:
        """[(monotonic receive time, verdict payload)] in arrival order."""
        time.sleep(0.5)  # run_pipeline returned after every PUBACK; the broker's copies are on their way
        out, _ = self.proc.communicate("", timeout=60)
        return [(t, json.loads(text)) for t, text in json.loads(out.strip().splitlines()[-1])]


# --- one observed `patchline run` ----------------------------------------------------------------

def percentiles(values_ms: list[float]) -> dict:
    v = np.asarray(values_ms, dtype=np.float64)
    if not len(v):
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": int(len(v)), "p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
            "max": float(v.max())}


def observed_run(pipeline: Path, source: Path, line: str, banks: Path, broker_url: str, spool: Path, *,
                 fps: float | None = None, max_batch: int | None = None, threads: int | None = None,
                 warmup: int = 0) -> dict:
    """One run_pipeline of `pipeline` on the folder `source`, watched from outside: when each frame entered
    the source, when the broker acknowledged its verdict (and the process CPU time then), what an
    independent subscriber received and when, the batch sizes the elements took."""
    from patchline.app.run import run_pipeline
    from patchline.app.run_settings import run_settings

    entered: dict[int, float] = {}  # frame_id → perf_counter when it entered the stream (before its file read)
    ahead: dict[int, int] = {}  # frame_id → frames entered before it whose verdict was not yet acknowledged
    acks: list[tuple[float, float, bytes]] = []  # (perf_counter, process CPU s, payload) per verdict PUBACK
    lock = threading.Lock()
    held = {}

    def on_start(manager) -> None:
        held["manager"] = manager
        stream = next(iter(manager.streams.values()))
        for name in stream.cfg.sources:
            element = stream.nodes[name].element
            inner = element.frames

            def watched(stop, inner=inner):
                for frame in inner(stop):
                    with lock:
                        ahead[frame.frame_id] = len(entered) - len(acks)
                        entered[frame.frame_id] = frame.started
                    yield frame
            element.frames = watched

    def on_delivered(topic: str, data: bytes) -> None:
        if topic.endswith("/verdict"):
            now, cpu = time.perf_counter(), time.process_time()
            with lock:
                acks.append((now, cpu, data))

    shutil.rmtree(spool, ignore_errors=True)
    counter = Counter(broker_url, line)
    summary = io.StringIO()
    began, began_cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(summary):
        run_pipeline(run_settings(pipeline, str(source), broker_url, camera="cam", line=line, banks_root=banks,
                                  spool_dir=spool, ort_threads=threads, folder_fps=fps, max_batch=max_batch),
                     on_delivered=on_delivered, on_start=on_start)
    ended, ended_cpu = time.perf_counter(), time.process_time()
    received = counter.finish()
    print(summary.getvalue().rstrip(), file=sys.stderr)

    stream = next(iter(held["manager"].streams.values()))
    stats = stream.stats()
    post = next(node.element.impl for node in stream.nodes.values() if hasattr(node.element, "impl"))
    by_frame = {}
    for t, cpu, data in acks:
        by_frame.setdefault(json.loads(data)["frame_id"], (t, cpu))
    measured = sorted(by_frame)[warmup:]
    puback_ms = [1000 * (by_frame[f][0] - entered[f]) for f in measured if f in entered]
    comparable = time.get_clock_info("perf_counter").implementation == time.get_clock_info("monotonic").implementation
    sub_first = {}
    for t, payload in received:
        sub_first.setdefault(payload["frame_id"], (t, payload))
    subscriber_ms = [1000 * (sub_first[f][0] - entered[f]) for f in measured if f in sub_first and f in entered] \
        if comparable else []
    times = sorted(t for t, _ in sub_first.values())
    n = len(times)
    cpu_marks = sorted(by_frame.values())
    batching = {}
    cap = held["manager"].streams[stream.cfg.name].context.options.get("max_batch")
    for name, node in stream.nodes.items():
        own = int(getattr(node.element, "max_batch", 1))
        if own > 1 and node.taken:
            batching[name] = (node.processed / node.taken, min(own, cap or own))
    ms = lambda seconds: 1000.0 * seconds / max(stats["frames_in"], 1)
    busy = stats["busy_s"]
    return {
        "frames_in": stats["frames_in"], "delivered": n, "acknowledged": len(by_frame),
        "dropped": stats["frames_in"] - n, "stream_dropped": stats["dropped"],
        "fps_delivered": (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else float("nan"),
        "cpu_ms": (1000 * (cpu_marks[-1][1] - cpu_marks[0][1]) / (len(cpu_marks) - 1)
                   if len(cpu_marks) > 1 else float("nan")),
        "cpu_ms_whole": 1000 * (ended_cpu - began_cpu) / max(stats["frames_in"], 1),
        "startup_s": (cpu_marks[0][0] - began) if cpu_marks else float("nan"), "wall_s": ended - began,
        "puback": percentiles(puback_ms), "subscriber": percentiles(subscriber_ms), "warmup": warmup,
        "ahead_max": max((ahead[f] for f in measured if f in ahead), default=0),
        "alone": sum(ahead.get(f, 1) == 0 for f in measured) / max(len(measured), 1),
        "batching": batching,
        "scores": {p["source"]: p["score"] for _, p in sub_first.values() if p.get("verdict") in ("good", "defect")},
        "defects_in": sum(p.get("verdict") == "defect" for _, p in sub_first.values()),
        "bank": post.live.state.index.ntotal, "search_kind": post.live.state.meta.search.get("kind", "exact"),
        "stages": {"decode": ms(busy.get("mxpi_imagedecoder0", 0.0)),
                   "resize_crop": ms(sum(busy.get(k, 0.0) for k in ("mxpi_imageresize0", "mxpi_imagecrop0",
                                                                    "mxpi_imagenormalize0"))),
                   "layer2": ms(busy.get("mxpi_tensorinfer0", 0.0)), "layer3": ms(busy.get("mxpi_tensorinfer1", 0.0)),
                   "embed": ms(post.stage_seconds["embed"]), "search": ms(post.stage_seconds["search"]),
                   "aggregate_map": ms(post.stage_seconds["aggregate_map"])},
        "exact_queries": (post.live.state.pruned.exact_queries / max(stats["frames_in"], 1)
                          if post.live.state.pruned is not None
                          else float(post.live.state.meta.grid[0] * post.live.state.meta.grid[1])),
    }


def batching_text(batching: dict) -> str:
    """'mxpi_tensorinfer0 1.00 (≤ 2), …': mean frames per call of each batching element, and its cap."""
    return ", ".join(f"{name} {mean:.2f} (≤ {cap})" for name, (mean, cap) in batching.items()) or "none batch"


# --- the real ELPV lines ---------------------------------------------------------------------------

def export_models(backbone: str, size: int, models: Path) -> None:
    if all((models / f"{backbone}_{size}_{layer}.onnx").is_file() for layer in ("layer2", "layer3")):
        return
    cmd = [sys.executable, "-m", "patchline.cli", "export", "--backbone", backbone, "--imagesize", str(size),
           "--out", str(models)]
    from patchline.models.registry import backbone_spec

    if not backbone_spec(backbone).packaged_weights:
        cmd.append("--random-weights")
    print(f"exporting {backbone} at {size} …", file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def banks_for(work: Path, config: Path, quick: bool = False) -> Path:
    """The banks root of the lines `config` sets up: work/banks for configs/elpv.yaml, else
    work/banks-<config stem> (the same line names, other settings); '-quick' for --quick lines."""
    return work / (("banks" if config == CONFIGURED else f"banks-{config.stem}") + ("-quick" if quick else ""))


def train_command(line: str, dataset: Path, banks: Path, config: Path) -> list[str]:
    """`patchline train` of `line` as `config` says; the configured line with the graph index (--search hnsw),
    other configs with their own search setting."""
    return ([sys.executable, "-m", "patchline", "train", line, "--dataset", str(dataset), "--banks", str(banks),
             "--config", str(config), "--quiet"] + (["--search", "hnsw"] if config == CONFIGURED else []))


def elpv_root(work: Path, quick: bool = False) -> Path:
    return work / ("elpv-quick" if quick else "elpv")


def elpv_dataset(work: Path, cell_type: str, quick: bool = False) -> Path:
    """The ELPV split (docs/design.md, Data) of one cell type as files under elpv_root (written once;
    later calls, e.g. in a process whose memory is measured, never load the data set)."""
    from patchline.app.demo import write_elpv_line

    root = elpv_root(work, quick)
    done = root / f"elpv-{cell_type}" / ".complete"
    if not done.is_file():
        write_elpv_line(root, cell_type, quick=quick)
        done.touch()
    return root


def train_real_line(cell_type: str, work: Path, config: Path = CONFIGURED, quick: bool = False) -> tuple[str, str | None]:
    """Train elpv-<cell_type> exactly as `config` says (real weights, real cells, the line's coreset;
    train_command) into banks_for(work, config), unless it is there; beside it, when the line
    searches through a graph index, the same bank searched exactly. Returns (line, exact copy or
    None when the line itself searches exactly). quick: the demo's third of the cells."""
    line, banks = f"elpv-{cell_type}", banks_for(work, config, quick)
    dataset = elpv_dataset(work, cell_type, quick)
    if not (banks / line / "CURRENT").is_file():
        print(f"training {line} as {config.name} says{' (quick: a third of the cells)' if quick else ''} …",
              file=sys.stderr)
        subprocess.run(train_command(line, dataset, banks, config), check=True, stdout=subprocess.DEVNULL)
    version = (banks / line / "CURRENT").read_text().strip()
    if json.loads((banks / line / version / "bank.json").read_text())["search"]["kind"] == "exact":
        return line, None
    exact = f"{line}-exact"
    if not (banks / exact / "CURRENT").is_file():  # the very same patches and threshold, searched exactly
        target = banks / exact / version
        shutil.copytree(banks / line / version, target)
        (target / "search.faiss").unlink()
        meta = json.loads((target / "bank.json").read_text())
        meta.update(line=exact, search={"kind": "exact"})
        (target / "bank.json").write_text(json.dumps(meta, indent=2))
        (banks / exact / "CURRENT").write_text(version + "\n")
    return line, exact


def test_cells(work: Path, cell_type: str, quick: bool = False) -> Path:
    """The protocol's test cells of one type as <label>_<name>.png links in one folder."""
    folder = work / f"cells-{cell_type}{'-quick' if quick else ''}"
    if not folder.is_dir():
        folder.mkdir()
        for label in ("good", "defect"):
            for path in sorted((elpv_root(work, quick) / f"elpv-{cell_type}" / "test" / label).glob("*.png")):
                (folder / f"{label}_{path.name}").symlink_to(path)
    return folder


def spread(cells: Path, n: int, work: Path) -> Path:
    """A folder of n cells taken evenly over `cells` in name order (so good and defective ones in the
    test split's proportion), read in an interleaved order (a camera sees them mixed)."""
    names = sorted(p.name for p in cells.iterdir())
    n = min(n, len(names))
    picked = [names[i * len(names) // n] for i in range(n)]
    folder = work / f"{cells.name}-spread-{n}"
    if not folder.is_dir():
        folder.mkdir()
        order = sorted(range(n), key=lambda i: ((i * 7919) % n, i))  # a fixed shuffle
        for rank, i in enumerate(order):
            (folder / f"{rank:05d}_{picked[i]}").symlink_to((cells / picked[i]).resolve())
    return folder


def repeated(cells: Path, rounds: int, work: Path) -> Path:
    """`cells` itself, or a folder holding every cell `rounds` times (r<k>_<name>) for a longer flood."""
    if rounds <= 1:
        return cells
    folder = work / f"{cells.name}-x{rounds}"
    if not folder.is_dir():
        folder.mkdir()
        for k in range(rounds):
            for path in sorted(cells.iterdir()):
                (folder / f"r{k}_{path.name}").symlink_to(path.resolve())
    return folder


def bank_facts(banks: Path, line: str) -> dict:
    """What the live bank.json of `line` says it is."""
    version = (banks / line / "CURRENT").read_text().strip()
    meta = json.loads((banks / line / version / "bank.json").read_text())
    training = meta.get("training", {})
    folds = meta.get("threshold_policy", {}).get("folds")
    calibration = training.get("calibration", "?") + (f", {len(folds)} folds" if isinstance(folds, list) else "")
    resize = f"{meta['resize']}" + (" (short side)" if meta.get("resize_type", "short_side") == "short_side" else "")
    return {"setting": (f"{meta['backbone']}, resize {resize} → crop {meta['imagesize']} px, "
                        f"{'+'.join(meta['layers'])}, patch {meta.get('patchsize', '?')}, coreset {meta['coreset_ratio']:g}, "
                        f"{meta['aggregation']}; calibration {calibration}; {training.get('n_images', '?')} training images"),
            "backbone": meta["backbone"], "imagesize": meta["imagesize"], "resize": meta["resize"],
            "layers": list(meta["layers"]), "coreset_ratio": meta["coreset_ratio"], "n_patches": meta["n_patches"],
            "embedding_dim": meta["embedding_dim"], "search": meta["search"]["kind"], "aggregation": meta["aggregation"],
            "calibration": calibration, "n_images": training.get("n_images")}


def line_pipeline(config: Path, s, line: str, work: Path) -> Path:
    """The pipeline file that streams `line` with `config`'s settings `s` (its LineSettings for the
    line): the shipped pipeline/elpv_mono.pipeline for the configured line, else the shipped folder
    pipeline pointed at the settings' backbone, sizes and layers; the models are exported into work/models."""
    if config == CONFIGURED:
        data = json.loads((ROOT / "pipeline" / "elpv_mono.pipeline").read_text())
        data["elpv_mono"]["mxpi_classpostprocessor0"]["props"]["line"] = line
        export_models("efficientnet_lite0", 224, work / "models")
    else:
        if s.resize_type != "short_side":
            raise SystemExit(f"{config}: the folder pipeline resizes the short side; resize_type {s.resize_type!r} "
                             "has no pipeline here.")
        export_models(s.backbone, s.imagesize, work / "models")
        data = pipeline_json(s.backbone, s.imagesize, s.layers, line, s.resize)
    path = work / f"{line}-{config.stem}.pipeline"
    path.write_text(json.dumps(data))
    return path


def real_line_rows(cell_types: list[str], work: Path, broker_url: str, threads: int | None,
                   config: Path = CONFIGURED, *, fps: float = 25.0, latency_frames: int = 260, warmup: int = 10,
                   rounds: int = 1, max_batch: int | None = None, exact: bool = True, latency: bool = True,
                   quick: bool = False) -> list[dict]:
    """Each line `config` sets up: the latency run (paced) on the line's own bank, the throughput run
    (flood) on it and, where it searches a graph index and `exact`, on the same bank searched exactly;
    image AUROC of the verdict scores the subscriber received, with a bootstrap interval."""
    from patchline.core.intervals import bootstrap_auroc
    from patchline.settings import load_category_table

    # the pipeline files are written beside work/models, so their models/… paths resolve there
    os.environ["PATCHLINE_MODELS"] = str(work / "models")
    banks = banks_for(work, config, quick)
    rows = []
    table = load_category_table(config)
    for cell_type in [c for c in cell_types if f"elpv-{c}" in table.categories]:  # the lines this config sets up
        s = table.get(f"elpv-{cell_type}")
        own, exact_copy = train_real_line(cell_type, work, config, quick)
        cells = test_cells(work, cell_type, quick)
        for line in [own] + ([exact_copy] if exact_copy and exact else []):
            path = line_pipeline(config, s, line, work)
            row = {"line": f"elpv-{cell_type}", "bank_line": line, "config": config.name, "facts": bank_facts(banks, line),
                   "cells": len(list(cells.iterdir())), "latency": None}
            if latency and line == own:
                paced = spread(cells, latency_frames, work)
                print(f"{line}: latency run, {latency_frames} cells at {fps:g} frames/s …", file=sys.stderr)
                row["latency"] = observed_run(path, paced, line, banks, broker_url, work / "spool" / line, fps=fps,
                                              max_batch=max_batch, threads=threads, warmup=warmup)
                row["latency"]["fps_paced"] = fps
                row["latency"]["defect_cells"] = sum(n.split("_", 1)[1].startswith("defect_") for n in
                                                     (p.name for p in paced.iterdir()))
            print(f"{line}: throughput run, {row['cells']} cells × {rounds} as fast as they go …", file=sys.stderr)
            flood = observed_run(path, repeated(cells, rounds, work), line, banks, broker_url, work / "spool" / line,
                                 max_batch=max_batch, threads=threads)
            scores = {name: v for name, v in flood.pop("scores").items() if rounds <= 1 or name.startswith("r0_")}
            scores = {(name[3:] if rounds > 1 else name): v for name, v in scores.items()}
            names = sorted(scores)
            labels = np.array([name.startswith("defect_") for name in names])
            row.update(throughput=flood, scores=scores,
                       auroc=bootstrap_auroc(labels, np.array([scores[n] for n in names], dtype=np.float64)))
            rows.append(row)
            print(f"{line} ({config.name}, {flood['search_kind']}): {flood['fps_delivered']:.1f} delivered verdicts/s, "
                  f"CPU ms/frame {flood['cpu_ms']:.1f}, AUROC {row['auroc'][0]:.4f}", file=sys.stderr)
    return rows


def fmt_ms(p: dict) -> str:
    return f"{p['p50']:.1f} / {p['p99']:.1f} / {p['max']:.1f}" if p["n"] else "n/a"


def latency_table(rows: list[dict]) -> str:
    head = ("| line | config | setting (its bank.json) | bank, search | frames measured (defect cells) | pace | "
            "frames still in the stream when one entered: max; share entering an empty stream | batch per call "
            "(mean, cap) | file read → PUBACK ms p50 / p99 / max | file read → subscriber ms p50 / p99 / max | "
            "CPU ms / frame |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lat = r["latency"]
        if lat is None:
            continue
        f = r["facts"]
        out.append(f"| {r['line']} | {r['config']} | {f['setting']} | {f['n_patches']} × {f['embedding_dim']}, "
                   f"{lat['search_kind']} | {lat['puback']['n']} ({lat['defect_cells']} of {lat['frames_in']} cells; "
                   f"first {lat['warmup']} left out) | {lat['fps_paced']:g} frames/s | {lat['ahead_max']}; "
                   f"{100 * lat['alone']:.0f} % | {batching_text(lat['batching'])} | {fmt_ms(lat['puback'])} | "
                   f"{fmt_ms(lat['subscriber'])} | {lat['cpu_ms']:.1f} |")
    return "\n".join(out)


def throughput_table(rows: list[dict]) -> str:
    head = ("| line | config | setting (its bank.json) | bank, search | frames in | delivered (subscriber) | dropped | "
            "delivered verdicts/s (subscriber, first → last) | wall ms / frame | CPU ms / frame (first → last PUBACK) "
            "| CPU ms / frame, whole run | start-up s | batch per call (mean, cap) | image AUROC of the verdict scores "
            "[95 % bootstrap] |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t, f = r["throughput"], r["facts"]
        point, low, high = r["auroc"]
        out.append(f"| {r['line']} | {r['config']} | {f['setting']} | {f['n_patches']} × {f['embedding_dim']}, "
                   f"{t['search_kind']} | {t['frames_in']} | {t['delivered']} | {t['dropped']} | "
                   f"{t['fps_delivered']:.1f} | {1000 / t['fps_delivered']:.1f} | {t['cpu_ms']:.1f} | "
                   f"{t['cpu_ms_whole']:.1f} | {t['startup_s']:.1f} | {batching_text(t['batching'])} | "
                   f"{point:.4f} [{low:.4f}, {high:.4f}] |")
    return "\n".join(out)


def stage_table(rows: list[dict]) -> str:
    head = ("| line | search | decode | resize+crop+norm | layer2 | layer3 | embed | search ms | aggregate+map "
            "| exact queries / frame |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t = r["throughput"]
        s = t["stages"]
        out.append(f"| {r['line']} | {t['search_kind']} | {s['decode']:.2f} | {s['resize_crop']:.2f} | {s['layer2']:.2f} | "
                   f"{s['layer3']:.2f} | {s['embed']:.2f} | {s['search']:.2f} | {s['aggregate_map']:.2f} | "
                   f"{t['exact_queries']:.0f} |")
    return "\n".join(out)


# --- synthetic rows: other backbones and sizes ------------------------------------------------------

def make_frames(folder: Path, n: int) -> list[Path]:
    """n PNG frames cut from scikit-image textures (a few distinct ones, repeated)."""
    if folder.is_dir() and len(list(folder.glob("*.png"))) == n:
        return sorted(folder.glob("*.png"))
    import skimage.data

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    textures = [skimage.data.brick(), skimage.data.gravel(), skimage.data.grass()]
    for i in range(n):
        t = textures[i % len(textures)]
        y, x = rng.integers(0, t.shape[0] - FRAME_SIZE, size=2)
        cv2.imwrite(str(folder / f"{i:05d}.png"), t[y:y + FRAME_SIZE, x:x + FRAME_SIZE])
    return sorted(folder.glob("*.png"))


def frame_subset(work: Path, frames: list[Path], n: int) -> Path:
    """A folder holding (links to) the first n frames."""
    folder = work / f"frames-{n}"
    if not folder.is_dir():
        folder.mkdir()
        for path in frames[:n]:
            (folder / path.name).symlink_to(path)
    return folder


def build_bank(backbone: str, size: int, layers: tuple[str, ...], models: Path, banks: Path, frames: list[Path]) -> str:
    """A bank for this model built with the exported models (ONNX Runtime); returns the line name."""
    from patchline.extractors.onnx import OnnxFeatureExtractor
    from patchline.settings import LineSettings, validate
    from patchline.training.train import build_bank as train_bank

    line = f"{backbone}_{size}_{'_'.join(layers)}"
    if (banks / line / "CURRENT").is_file():
        return line
    grid = (size + 7) // 8
    n_bank = round(0.01 * LINE_IMAGES * grid * grid)
    holdout = 4
    ratio = n_bank / ((BANK_IMAGES - holdout) * grid * grid)
    settings = validate(LineSettings(line=line, backbone=backbone, layers=layers, resize=RESIZE[size], imagesize=size,
                                     coreset_ratio=ratio, aggregation="max", holdout_fraction=holdout / BANK_IMAGES))
    extractor = OnnxFeatureExtractor(models / f"{backbone}_{size}_layer2.onnx", models / f"{backbone}_{size}_layer3.onnx",
                                     layers)
    print(f"bank {line}: {n_bank} patches …", file=sys.stderr)
    train_bank(settings, frames[:BANK_IMAGES], banks, extractor, progress=False)
    return line


def pipeline_json(backbone: str, size: int, layers: tuple[str, ...], line: str, resize: int | None = None) -> dict:
    """The shipped folder pipeline, pointed at this model size (short side resized to `resize`,
    default RESIZE[size]) and line."""
    name = "folder_layer2_layer3" if "layer3" in layers else "folder_layer2"
    data = json.loads((ROOT / "pipeline" / f"{name}.pipeline").read_text())
    stream = data[name]
    stream["mxpi_imageresize0"]["props"]["scaleValue"] = str(resize or RESIZE[size])
    stream["mxpi_imagecrop0"]["props"].update(cropHeight=str(size), cropWidth=str(size))
    for key in ("mxpi_tensorinfer0", "mxpi_tensorinfer1"):
        if key in stream:
            layer = "layer2" if key.endswith("0") else "layer3"
            stream[key]["props"]["modelPath"] = f"models/{backbone}_{size}_{layer}.onnx"
    stream["mxpi_classpostprocessor0"]["props"]["line"] = line
    return data


def bare_forward(backbone: str, size: int, layers, models: Path, threads: int | None,
                 seconds: float = 6.0) -> tuple[float, float]:
    """(frames/s, process CPU ms per frame) of the model(s) alone, batch 1."""
    from patchline.extractors.onnx import OnnxFeatureExtractor

    extractor = OnnxFeatureExtractor(models / f"{backbone}_{size}_layer2.onnx", models / f"{backbone}_{size}_layer3.onnx",
                                     layers, threads)
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    for _ in range(3):
        extractor(x)
    n, began, began_cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - began < seconds:
        extractor(x)
        n += 1
    return n / (time.perf_counter() - began), 1000.0 * (time.process_time() - began_cpu) / n


def synthetic_table(rows: list[dict], args) -> str:
    out = [f"\nSynthetic lines: folder pipeline, {FRAME_SIZE}×{FRAME_SIZE} PNG texture frames (up to {args.frames} "
           f"per run; heavy models about 20 s of frames), each as fast as it goes (throughput run). bare: the "
           f"model(s) alone, batch 1, intra-op threads {args.threads or cores()}. Stage columns: wall ms per frame "
           f"inside the element (elements overlap in their own threads). CPU ratio = bare CPU / pipeline CPU.\n"]
    head = ("| backbone | size | layers | bank (bank.json: patches, coreset) | bare fps | delivered verdicts/s | "
            "ratio | bare CPU ms | pipeline CPU ms | CPU ratio | batch per call (mean, cap) | decode | "
            "resize+crop+norm | layer2 | layer3 | embed | search | aggregate+map |")
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t, s = r["throughput"], r["throughput"]["stages"]
        out.append(f"| {r['backbone']} | {r['size']} | {r['layers']} | {r['facts']['n_patches']}, "
                   f"{r['facts']['coreset_ratio']:.4f} | {r['bare']:.1f} | {t['fps_delivered']:.1f} | "
                   f"{t['fps_delivered'] / r['bare']:.2f} | {r['bare_cpu']:.1f} | {t['cpu_ms']:.1f} | "
                   f"{r['bare_cpu'] / t['cpu_ms']:.2f} | {batching_text(t['batching'])} | {s['decode']:.2f} | "
                   f"{s['resize_crop']:.2f} | {s['layer2']:.2f} | {s['layer3']:.2f} | {s['embed']:.2f} | "
                   f"{s['search']:.2f} | {s['aggregate_map']:.2f} |")
    return "\n".join(out)


def synthetic_rows(args, work: Path, broker_url: str) -> list[dict]:
    frames = make_frames(work / "frames", args.frames)
    rows = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        for size in (int(s) for s in args.sizes.split(",")):
            export_models(backbone, size, work / "models")
            for layer_set in args.layers.split(";"):
                layers = tuple(layer_set.split(","))
                line = build_bank(backbone, size, layers, work / "models", work / "banks", frames)
                path = work / f"{line}.pipeline"
                path.write_text(json.dumps(pipeline_json(backbone, size, layers, line)))
                bare, bare_cpu = bare_forward(backbone, size, layers, work / "models", args.threads)
                n = max(30, min(args.frames, int(bare * 20)))  # about 20 s per run for the heavy models
                flood = observed_run(path, frame_subset(work, frames, n), line, work / "banks", broker_url,
                                     work / "spool" / line, max_batch=args.max_batch, threads=args.threads)
                rows.append({"backbone": backbone, "size": size, "layers": "+".join(layers), "bare": bare,
                             "bare_cpu": bare_cpu, "throughput": flood, "facts": bank_facts(work / "banks", line)})
                print(f"{line}: {flood['fps_delivered']:.1f} delivered verdicts/s (bare {bare:.1f}); CPU ms/frame "
                      f"{flood['cpu_ms']:.1f}", file=sys.stderr)
    return rows


def heading(args) -> str:
    import paho.mqtt

    return (f"Machine: {machine()}. Every run is `patchline run`'s own code (run_pipeline) publishing to a "
            f"Mosquitto on 127.0.0.1 (QoS 1); PUBACK times from run_pipeline's on_delivered hook, the subscriber is "
            f"a separate paho {paho.mqtt.__version__} process on the same machine. CPU ms / frame: this process's "
            f"CPU time (all its threads) per frame; the broker and the subscriber are other processes and not "
            f"counted. Batch per call: the mean number of frames a batching element took per call (cap: "
            f"{'--max-batch ' + str(args.max_batch) if args.max_batch else 'the element’s own'}).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", default="mono,poly",
                    help="real ELPV lines (cell types) to train as configured and stream; '' for none")
    ap.add_argument("--line-config", type=Path, action="append", default=[],
                    help="also train and stream the real lines as this line config says (e.g. one written by "
                         "`patchline tune`; its elpv-mono / elpv-poly entries); repeatable")
    ap.add_argument("--skip-configured", action="store_true",
                    help="stream only the --line-config lines, not configs/elpv.yaml's")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact-search throughput run of graph-indexed banks")
    ap.add_argument("--fps", type=float, default=25.0, help="the latency run's pace, frames/s (default 25)")
    ap.add_argument("--latency-frames", type=int, default=260, help="cells in the latency run (default 260)")
    ap.add_argument("--warmup", type=int, default=10, help="first frames of the latency run left out (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="times every test cell goes through the throughput run")
    ap.add_argument("--max-batch", type=int, help="cap every element's batch at this many frames (default: each "
                                                  "element's own cap)")
    ap.add_argument("--backbones", default="efficientnet_lite0,wide_resnet50_2",
                    help="synthetic rows: backbones ('' for none)")
    ap.add_argument("--sizes", default="224,320")
    ap.add_argument("--layers", default="layer2;layer2,layer3", help="synthetic line layer sets, ';'-separated")
    ap.add_argument("--frames", type=int, default=300, help="synthetic frames per run")
    ap.add_argument("--threads", type=int, help="onnxruntime intra-op threads per model (default: the runner's "
                                                 "choice in the pipeline, the core count for the bare forward)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-bench")
    ap.add_argument("--quick", action="store_true",
                    help="check the script: the demo's third of the ELPV cells, 30 paced frames, no synthetic rows")
    ap.add_argument("--subscriber", nargs=2, metavar=("URL", "TOPIC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.subscriber:
        subscriber_child(*args.subscriber)
        return 0
    if args.quick:
        args.latency_frames, args.warmup, args.backbones = min(args.latency_frames, 30), min(args.warmup, 2), ""
    for flag, value in (("--fps", args.fps), ("--latency-frames", args.latency_frames), ("--rounds", args.rounds)):
        if not value > 0:
            raise SystemExit(f"{flag} must be positive, got {value}.")
    if not 0 <= args.warmup < args.latency_frames:
        raise SystemExit("--warmup must leave frames to measure.")

    work = args.work.resolve()
    line_configs = [c.resolve() for c in args.line_config]
    for config in line_configs:
        if not config.is_file():
            raise SystemExit(f"--line-config {config} does not exist.")
    (work / "models").mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # model paths in pipeline files are relative to the working directory
    from patchline.app.demo import LocalBroker

    broker = LocalBroker(work)
    real_rows, rows = [], []
    try:
        cell_types = [c for c in args.lines.split(",") if c]
        for config in ([] if args.skip_configured else [CONFIGURED]) + line_configs:
            real_rows += real_line_rows(cell_types, work, broker.url, args.threads, config, fps=args.fps,
                                        latency_frames=args.latency_frames, warmup=args.warmup, rounds=args.rounds,
                                        max_batch=args.max_batch, exact=not args.no_exact, quick=args.quick)
        rows = synthetic_rows(args, work, broker.url)
    finally:
        broker.close()
    print(heading(args))
    if real_rows:
        print(f"\nReal lines{' (--quick: a third of the cells, figures not for reporting)' if args.quick else ''}: "
              "trained as each config says (ImageNet weights), the protocol's test cells (300×300 PNG) through the "
              "line's pipeline (configs/elpv.yaml: pipeline/elpv_mono.pipeline; other configs: the shipped folder "
              "pipeline with their models).\n")
        print(f"Latency of one frame alone (cells at {args.fps:g} frames/s, a camera's pace):\n")
        print(latency_table(real_rows))
        print(f"\nThroughput of delivered verdicts with the machine full (every test cell{' × ' + str(args.rounds) if args.rounds > 1 else ''} "
              "as fast as the stream takes it; a graph-indexed bank also searched exactly):\n")
        print(throughput_table(real_rows))
        print("\nWhere the time goes in the throughput runs (wall ms per frame inside each element; elements run in "
              "their own threads and overlap):\n")
        print(stage_table(real_rows))
    if rows:
        print(synthetic_table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
