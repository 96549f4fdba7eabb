"""`patchline tune --line L --images DIR`: try a grid of line settings on good images only, under a
speed budget measured with the exported models on this machine; write the chosen settings (and
the table of what was tried) as a line config that `patchline train --config` reads."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from patchline.errors import ConfigError
from patchline.settings import LineSettings

TIMED_RUNS = 20


def model_cost_ms(paths: dict[str, Path], imagesize: int) -> dict[str, float]:
    """CPU ms per frame of the exported layer2 and layer3 models, one onnxruntime thread, batch 1
    (as the pipeline runs them): {"layer2": ms, "layer3": ms}, the mean of TIMED_RUNS runs after a warm-up."""
    from patchline.extractors.onnx import open_session

    layer2, layer3 = open_session(paths["layer2"], 1), open_session(paths["layer3"], 1)
    image = np.random.default_rng(0).standard_normal((1, 3, imagesize, imagesize)).astype(np.float32)
    features = layer2.run(None, {layer2.get_inputs()[0].name: image})[0]
    layer3.run(None, {layer3.get_inputs()[0].name: features})
    costs = {}
    for name, session, value in (("layer2", layer2, image), ("layer3", layer3, features)):
        feed = {session.get_inputs()[0].name: value}
        t0 = time.process_time()
        for _ in range(TIMED_RUNS):
            session.run(None, feed)
        costs[name] = 1000.0 * (time.process_time() - t0) / TIMED_RUNS
    return costs


def trial_table(trials, chosen, cores: int, budget_fps: float | None) -> str:
    """The text table of every trial, the chosen one marked with *."""
    head = (f"{'':2}{'backbone':<20}{'size':>5}{'layers':>15}{'patch':>6}{'coreset':>8}{'patches':>9}"
            f"{'proxy AUROC':>12}{'aggregation':>12}{'search':>7}{'CPU ms':>8}{'est. fps':>9}")
    rows = [head]
    for t in trials:
        c = t.candidate
        fps = t.frames_per_second(cores)
        mark = "*" if t is chosen else ("-" if budget_fps is not None and fps < budget_fps else " ")
        rows.append(f"{mark:2}{c.backbone:<20}{c.imagesize:>5}{'+'.join(c.layers):>15}{c.patchsize:>6}"
                    f"{c.coreset_ratio:>8g}{t.bank_patches:>9}{t.best_auroc:>12.4f}{t.aggregation:>12}{t.search:>7}"
                    f"{t.cpu_ms:>8.1f}{fps:>9.0f}")
    return "\n".join(rows)


def write_tuned_config(path: Path, base: LineSettings, trials, chosen, source: str, cores: int,
                       budget_fps: float | None) -> None:
    """A line config (`defaults:` + `categories: {line: …}`) with a `tune:` section of every trial."""
    c = chosen.candidate
    line_settings = {"backbone": c.backbone, "imagesize": c.imagesize, "resize": c.resize,
                     "layers": list(c.layers), "patchsize": c.patchsize, "coreset_ratio": c.coreset_ratio,
                     "aggregation": chosen.aggregation}
    defaults = {"resize_type": base.resize_type,
                "false_alarm_rate": base.false_alarm_rate, "calibration": base.calibration,
                "holdout_fraction": base.holdout_fraction, "folds": base.folds, "seed": base.seed,
                "batch_size": base.batch_size}
    record = {
        "defaults": defaults,
        "categories": {base.line: line_settings},
        "tune": {
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "images": source, "cores": cores,
            "budget_fps": budget_fps,
            "proxy": "best aggregation's AUROC: a quarter of the good images (never in the proxy bank) against the "
                     "same images with two subtle synthetic defects each (crack, dark region, texture change, spot)",
            "cost": "CPU ms per frame: preprocess + exported models (onnxruntime, 1 thread) + embed + search "
                    "(as the pipeline searches that bank) + overhead; est. fps = cores × 1000 / CPU ms × 0.7",
            "tried": [{"backbone": t.candidate.backbone, "imagesize": t.candidate.imagesize,
                       "resize": t.candidate.resize, "layers": list(t.candidate.layers),
                       "patchsize": t.candidate.patchsize, "coreset_ratio": t.candidate.coreset_ratio,
                       "bank_patches": t.bank_patches,
                       "proxy_auroc": round(t.best_auroc, 4), "aggregation": t.aggregation, "search": t.search,
                       "cpu_ms": {k: round(v, 2) for k, v in t.cost_ms.items()},
                       "estimated_fps": round(t.frames_per_second(cores), 1), "chosen": t is chosen}
                      for t in trials],
        },
    }
    header = (f"# Written by `patchline tune` for line {base.line} from the good images in {source}.\n"
              f"# Train with: patchline train --line {base.line} --images {source} --config {path}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(record, sort_keys=False, width=120, allow_unicode=True))


@dataclass(frozen=True)
class TuneGrid:
    """The settings `patchline tune` tries: every combination of these (patchsizes None: the base line's)."""

    backbones: Sequence[str]
    sizes: Sequence[int]
    layer_sets: Sequence[tuple[str, ...]]
    ratios: Sequence[float]
    patchsizes: Sequence[int] | None = None


def run_tune(base: LineSettings, items: Sequence, source: str, out: Path, grid: TuneGrid,
             budget_fps: float | None = None, weights: Path | None = None, progress: bool = True) -> int:
    """Tune `base.line` on `items` (good images) over `grid`, print the table, write `out`; returns 0.

    PatchlineError (one sentence) when no setting meets the budget; nothing is written then."""
    from patchline.app.jobs import cached_extractor, export_backbone
    from patchline.training.tune import candidate_grid, choose, tune_line

    if budget_fps is not None and not budget_fps > 0:
        raise ConfigError(f"--budget-fps must be a positive number, not {budget_fps}.")
    candidates = candidate_grid(base, grid.backbones, grid.sizes, grid.layer_sets, grid.ratios, grid.patchsizes)
    for c in candidates:  # every setting is checked before anything runs
        c.settings(base)
    cores = os.cpu_count() or 1
    cache: dict = {}
    costs: dict = {}
    with tempfile.TemporaryDirectory(prefix="patchline-tune-") as scratch:
        def extractor_for(backbone: str):
            return cached_extractor(cache, backbone, ("layer2", "layer3"), weights, False)[0]

        def model_ms_for(candidate) -> dict[str, float]:
            key = (candidate.backbone, candidate.imagesize)
            if key not in costs:
                paths = export_backbone(candidate.backbone, candidate.imagesize, Path(scratch), weights)
                costs[key] = model_cost_ms(paths, candidate.imagesize)
            return costs[key]

        trials = tune_line(base, items, candidates, extractor_for, model_ms_for, progress)
    chosen = choose(trials, budget_fps, cores)
    print(trial_table(trials, chosen, cores, budget_fps))
    write_tuned_config(out, base, trials, chosen, source, cores, budget_fps)
    c = chosen.candidate
    print(f"chosen for line {base.line}: {c.label()}, aggregation {chosen.aggregation} (proxy AUROC "
          f"{chosen.best_auroc:.4f}, about {chosen.frames_per_second(cores):.0f} frames/s on {cores} cores)\n"
          f"wrote {out}; train with: patchline train --line {base.line} --images {source} --config {out}")
    return 0
