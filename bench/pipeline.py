"""Folder-pipeline speed: frames/s end to end (file read → MQTT publish) and per-stage latency,
beside the bare model forward measured in the same run. Not a test. Prints a Markdown table.

    python bench/pipeline.py [--backbones efficientnet_lite0,wide_resnet50_2] [--sizes 224,320]
                             [--frames 300] [--threads N] [--work DIR (default: a patchline-bench folder in the temp dir)]
                             [--lines mono,poly] [--line-config FILE …] [--skip-configured]

Real lines first: elpv-mono / elpv-poly trained as configs/elpv.yaml says and, with --line-config,
as another line config says (e.g. the one `patchline tune` wrote), each streamed through its pipeline.

Models are exported once (`patchline export`, in a subprocess: this process never loads
MindSpore); backbones with packaged ImageNet weights use them, wide_resnet50_2 random weights
(`--random-weights`, speed only). Banks are built from the exported models with realistic sizes:
1 % coreset of a 250-image line (e.g. 1960 patches at 224, 4000 at 320). Frames are 360 × 360 PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESIZE = {224: 256, 320: 336}
LINE_IMAGES = 250  # the bank size of a line trained on this many images at coreset ratio 1 %
BANK_IMAGES = 16
FRAME_SIZE = 360


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


def run_pipeline_once(pipeline: Path, frames_dir: Path, banks: Path, broker_url: str, spool: Path,
                      threads: int | None) -> dict:
    """Run the folder pipeline once; frames/s from start to the last publish, ms per stage per frame."""
    from patchline.mqtt.broker import BrokerSettings
    from patchline.mqtt.publisher import Publisher
    from patchline.pipeline.config import load_pipeline
    from patchline.pipeline.streams import StreamManager

    config = load_pipeline(pipeline)
    stream_name = next(iter(config.streams))
    publisher = Publisher(BrokerSettings.from_url(broker_url), "bench", ["cam"], spool, max_verdicts=100000)
    publisher.start()
    publish_s, count, last, scores = [0.0], [0], [0.0], {}

    def on_result(payload: dict) -> None:
        t = time.perf_counter()
        scores[payload.get("source")] = payload.get("score")
        publisher.publish_result({**payload, "line": "bench"})
        publish_s[0] += time.perf_counter() - t
        count[0] += 1
        last[0] = time.perf_counter()

    manager = StreamManager(config, str(frames_dir), "cam", {"banks_root": str(banks), "ort_threads": threads},
                            on_result)
    began, began_cpu = time.perf_counter(), time.process_time()
    manager.start()
    manager.wait()
    cpu = time.process_time() - began_cpu
    manager.close()
    delivered = publisher.wait_idle(60)
    publisher.close(5)
    stream = manager.streams[stream_name]
    n = count[0]
    busy = stream.stats()["busy_s"]
    post = next(node.element.impl for node in stream.nodes.values() if hasattr(node.element, "impl"))
    ms = lambda seconds: 1000.0 * seconds / max(n, 1)
    return {
        "frames": n, "fps": n / (last[0] - began), "delivered": delivered, "cpu": ms(cpu),
        "decode": ms(busy["mxpi_imagedecoder0"]),
        "resize_crop": ms(busy["mxpi_imageresize0"] + busy["mxpi_imagecrop0"] + busy["mxpi_imagenormalize0"]),
        "layer2": ms(busy["mxpi_tensorinfer0"]), "layer3": ms(busy.get("mxpi_tensorinfer1", 0.0)),
        "embed": ms(post.stage_seconds["embed"]), "search": ms(post.stage_seconds["search"]),
        "aggregate_map": ms(post.stage_seconds["aggregate_map"]), "publish": ms(publish_s[0]),
        "bank": post.live.state.index.ntotal, "search_kind": post.live.state.meta.search.get("kind", "exact"),
        "stage_cpu": ms(sum(stream.stats()["cpu_s"].values())),
        "cpu_by_element": {name: ms(s) for name, s in stream.stats()["cpu_s"].items()},
        "exact_queries": (post.live.state.pruned.exact_queries / max(n, 1)
                          if post.live.state.pruned is not None else float(post.live.state.meta.grid[0] * post.live.state.meta.grid[1])),
        "scores": scores,
    }


CONFIGURED = ROOT / "configs" / "elpv.yaml"


def banks_for(work: Path, config: Path) -> Path:
    """The banks root of the lines `config` sets up: work/banks for configs/elpv.yaml, else
    work/banks-<config stem> (the same line names, other settings)."""
    return work / ("banks" if config == CONFIGURED else f"banks-{config.stem}")


def train_command(line: str, dataset: Path, banks: Path, config: Path) -> list[str]:
    """`patchline train` of `line` as `config` says; the configured line with the graph index (--search hnsw),
    other configs with their own search setting."""
    return ([sys.executable, "-m", "patchline", "train", line, "--dataset", str(dataset), "--banks", str(banks),
             "--config", str(config), "--quiet"] + (["--search", "hnsw"] if config == CONFIGURED else []))


def train_real_line(cell_type: str, work: Path, config: Path = CONFIGURED) -> tuple[str, str | None]:
    """Train elpv-<cell_type> exactly as `config` says (real weights, real cells, the line's coreset;
    train_command) into banks_for(work, config), unless it is there; beside it, when the line
    searches through a graph index, the same bank searched exactly. Returns (line, exact copy or
    None when the line itself searches exactly)."""
    from patchline.app.demo import write_elpv_line

    line, banks = f"elpv-{cell_type}", banks_for(work, config)
    dataset = write_elpv_line(work / "elpv", cell_type, quick=False)
    if not (banks / line / "CURRENT").is_file():
        print(f"training {line} as {config.name} says …", file=sys.stderr)
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


def test_cells(work: Path, cell_type: str) -> Path:
    """The protocol's test cells of one type as <label>_<name>.png links in one folder."""
    folder = work / f"cells-{cell_type}"
    if not folder.is_dir():
        folder.mkdir()
        for label in ("good", "defect"):
            for path in sorted((work / "elpv" / f"elpv-{cell_type}" / "test" / label).glob("*.png")):
                (folder / f"{label}_{path.name}").symlink_to(path)
    return folder


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
                   config: Path = CONFIGURED) -> list[dict]:
    """Stream each line's test cells through its pipeline (see line_pipeline), the bank's own search
    and (where that is a graph index) exact search of the same bank; frames/s, CPU, stages and image
    AUROC of the published scores."""
    from patchline.core.metrics import auroc
    from patchline.settings import load_category_table

    # the pipeline files are written beside work/models, so their models/… paths resolve there
    os.environ["PATCHLINE_MODELS"] = str(work / "models")
    banks = banks_for(work, config)
    rows = []
    table = load_category_table(config)
    for cell_type in [c for c in cell_types if f"elpv-{c}" in table.categories]:  # the lines this config sets up
        s = table.get(f"elpv-{cell_type}")
        setting = (f"{s.backbone} {s.imagesize}px {'+'.join(s.layers)} coreset {s.coreset_ratio:g} "
                   f"{s.aggregation}")
        own, exact = train_real_line(cell_type, work, config)
        cells = test_cells(work, cell_type)
        for line in ([exact] if exact else []) + [own]:
            path = line_pipeline(config, s, line, work)
            spool = work / "spool" / line
            shutil.rmtree(spool, ignore_errors=True)
            result = run_pipeline_once(path, cells, banks, broker_url, spool, threads)
            scores = result.pop("scores")
            print("  CPU ms per frame by element: " + ", ".join(f"{k} {v:.2f}" for k, v in result.pop("cpu_by_element").items()),
                  file=sys.stderr)
            names = sorted(scores)
            labels = np.array([name.startswith("defect_") for name in names], dtype=int)
            result["auroc"] = auroc(labels, np.array([scores[name] for name in names], dtype=np.float64))
            search = result.pop("search_kind")
            rows.append({**result, "line": f"elpv-{cell_type}", "index": search, "cells": len(names),
                         "config": config.name, "setting": setting})
            print(f"elpv-{cell_type} ({config.name}) {search}: {result['fps']:.1f} frames/s, CPU ms/frame "
                  f"{result['cpu']:.1f}, AUROC {result['auroc']:.4f}", file=sys.stderr)
    return rows


def real_line_table(rows: list[dict]) -> str:
    head = ("| line | config | setting | search | bank | cells | pipeline fps | CPU ms | decode | resize+crop+norm | layer2 | layer3 "
            "| embed | search ms | aggregate+map | exact queries / frame | image AUROC of the verdict scores |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['line']} | {r['config']} | {r['setting']} | {r['index']} | {r['bank']} | {r['cells']} | {r['fps']:.1f} | {r['cpu']:.1f} | "
                   f"{r['decode']:.2f} | {r['resize_crop']:.2f} | {r['layer2']:.2f} | {r['layer3']:.2f} | "
                   f"{r['embed']:.2f} | {r['search']:.2f} | {r['aggregate_map']:.2f} | {r['exact_queries']:.0f} | "
                   f"{r['auroc']:.4f} |")
    return "\n".join(out)


def print_synthetic_table(rows: list[dict], args) -> None:
    """The synthetic rows' Markdown table (bare model beside the pipeline)."""
    print(f"\nFolder pipeline, {FRAME_SIZE}×{FRAME_SIZE} PNG frames, up to {args.frames} per run (heavy models: "
          f"about 20 s of frames), {os.cpu_count()} CPU cores. "
          f"bare: the model(s) alone, batch 1, intra-op threads {args.threads or os.cpu_count()}. pipeline: file read → "
          f"MQTT publish. Stage columns: wall ms per frame inside the stage (stages run in their own threads and "
          f"overlap, so they add up to more than 1000 / fps). CPU ms: the whole process's CPU time per frame, all threads "
          f"(unlike wall times, independent of other load on the machine; {os.cpu_count()} idle cores bound the rate "
          f"at {os.cpu_count()}000 / CPU ms; CPU ratio = bare CPU / pipeline CPU).\n")
    head = ("| backbone | size | layers | bank | bare fps | pipeline fps | ratio | bare CPU ms | pipeline CPU ms "
            "| CPU ratio | decode "
            "| resize+crop+norm | layer2 | layer3 | embed | search | aggregate+map | publish |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        print(f"| {r['backbone']} | {r['size']} | {r['layers']} | {r['bank']} | {r['bare']:.1f} | {r['fps']:.1f} | "
              f"{r['fps'] / r['bare']:.2f} | {r['bare_cpu']:.1f} | {r['cpu']:.1f} | {r['bare_cpu'] / r['cpu']:.2f} | "
              f"{r['decode']:.2f} | {r['resize_crop']:.2f} | {r['layer2']:.2f} | "
              f"{r['layer3']:.2f} | {r['embed']:.2f} | {r['search']:.2f} | {r['aggregate_map']:.2f} | "
              f"{r['publish']:.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="efficientnet_lite0,wide_resnet50_2")
    ap.add_argument("--sizes", default="224,320")
    ap.add_argument("--layers", default="layer2;layer2,layer3", help="line layer sets, ';'-separated")
    ap.add_argument("--frames", type=int, default=300, help="frames per pipeline run")
    ap.add_argument("--threads", type=int, help="onnxruntime intra-op threads per model (default: the runner's "
                                                 "choice in the pipeline, the CPU count for the bare forward)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-bench")
    ap.add_argument("--lines", default="mono,poly",
                    help="real ELPV lines (cell types) to train as configured and stream; '' for none")
    ap.add_argument("--line-config", type=Path, action="append", default=[],
                    help="also train and stream the real lines as this line config says (e.g. one written by "
                         "`patchline tune`; its elpv-mono / elpv-poly entries); repeatable")
    ap.add_argument("--skip-configured", action="store_true",
                    help="stream only the --line-config lines, not configs/elpv.yaml's")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    line_configs = [c.resolve() for c in args.line_config]
    for config in line_configs:
        if not config.is_file():
            raise SystemExit(f"--line-config {config} does not exist.")
    (work / "models").mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # model paths in pipeline files are relative to the working directory
    frames = make_frames(work / "frames", args.frames)
    from patchline.app.demo import LocalBroker

    broker = LocalBroker(work)
    rows, real_rows = [], []
    try:
        cell_types = [c for c in args.lines.split(",") if c]
        for config in ([] if args.skip_configured else [CONFIGURED]) + line_configs:
            real_rows += real_line_rows(cell_types, work, broker.url, args.threads, config)
        for backbone in [b for b in args.backbones.split(",") if b]:
            for size in (int(s) for s in args.sizes.split(",")):
                export_models(backbone, size, work / "models")
                for layer_set in args.layers.split(";"):
                    layers = tuple(layer_set.split(","))
                    line = build_bank(backbone, size, layers, work / "models", work / "banks", frames)
                    path = work / f"{line}.pipeline"
                    path.write_text(json.dumps(pipeline_json(backbone, size, layers, line)))
                    bare, bare_cpu = bare_forward(backbone, size, layers, work / "models", args.threads)
                    spool = work / "spool" / line
                    shutil.rmtree(spool, ignore_errors=True)
                    n = max(30, min(args.frames, int(bare * 20)))  # about 20 s per run for the heavy models
                    result = run_pipeline_once(path, frame_subset(work, frames, n), work / "banks", broker.url, spool,
                                               args.threads)
                    print("  CPU ms per frame by element: " + ", ".join(
                        f"{k} {v:.2f}" for k, v in result.pop("cpu_by_element").items()), file=sys.stderr)
                    rows.append({"backbone": backbone, "size": size, "layers": "+".join(layers), "bare": bare,
                                 "bare_cpu": bare_cpu, **result})
                    sys.stdout.flush()
                    print(f"{line}: {result['fps']:.1f} frames/s (bare {bare:.1f}); CPU ms/frame {result['cpu']:.1f}, "
                          f"of it inside elements {result['stage_cpu']:.1f}", file=sys.stderr)
    finally:
        broker.close()
    if real_rows:
        print("\nReal lines, trained as each config says (ImageNet weights, all training cells): the protocol's test "
              "cells (300×300 PNG) through the line's pipeline (configs/elpv.yaml: pipeline/elpv_mono.pipeline; other "
              "configs: the shipped folder pipeline with their models) → MQTT; a bank with a graph index is also "
              "searched exactly in the same run (image scores exact for max / topk either way).\n")
        print(real_line_table(real_rows))
    if rows:
        print_synthetic_table(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
