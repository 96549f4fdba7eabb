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
from patchline.training.tune_confidence import RESAMPLES

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


def trial_table(trials, chosen, cores: int, budget_fps: float | None, shares: dict | None = None,
                ranks: dict | None = None) -> str:
    """The text table of every trial, the chosen one marked with *; shares: {id(trial): share of the
    proxy's resamples in which it comes first} and ranks: {id(trial): rank score} for the trials the
    choice was made among."""
    head = (f"{'':2}{'backbone':<20}{'size':>5}{'resize':>7}{'layers':>15}{'patch':>6}{'coreset':>8}{'patches':>9}"
            f"{'rung':>5}{'proxy AUROC':>12}{'aggregation':>12}{'rank z':>7}{'first in':>9}{'search':>7}{'CPU ms':>8}"
            f"{'est. fps':>9}")
    rows = [head]
    shares, ranks = shares or {}, ranks or {}
    for t in trials:
        c = t.candidate
        fps = t.frames_per_second(cores)
        mark = "*" if t is chosen else ("-" if budget_fps is not None and fps < budget_fps else " ")
        rows.append(f"{mark:2}{c.backbone:<20}{c.imagesize:>5}{c.resize:>7}{'+'.join(c.layers):>15}{c.patchsize:>6}"
                    f"{c.coreset_ratio:>8g}{t.bank_patches:>9}{t.rung:>5}{t.best_auroc:>12.4f}{t.aggregation:>12}"
                    f"{format(ranks[id(t)], '+.2f') if id(t) in ranks else '':>7}"
                    f"{format(shares[id(t)], '.0%') if id(t) in shares else '':>9}{t.search:>7}"
                    f"{t.cpu_ms:>8.1f}{fps:>9.0f}")
    return "\n".join(rows)


def _tried(t, chosen, cores: int, outcome: "TuneOutcome") -> dict:
    """One trial as the tuned config records it."""
    c = t.candidate
    share, rank = outcome.shares.get(id(t)), outcome.ranks.get(id(t))
    return {"backbone": c.backbone, "imagesize": c.imagesize, "resize": c.resize, "layers": list(c.layers),
            "patchsize": c.patchsize, "coreset_ratio": c.coreset_ratio, "bank_patches": t.bank_patches,
            "rung": t.rung, "bank_images": t.bank_images, "proxy_auroc": round(float(t.best_auroc), 4),
            "families": {str(k): round(float(v), 4) for k, v in t.families.items()}, "aggregation": t.aggregation,
            "rank_score": None if rank is None else round(float(rank), 4),
            "first_in_resamples": None if share is None else round(float(share), 3),
            "search": t.search, "cpu_ms": {k: round(float(v), 2) for k, v in t.cost_ms.items()},
            "search_ms_scaled_from_sample": t.cost_estimated,
            "estimated_fps": round(t.frames_per_second(cores), 1), "chosen": t is chosen}


@dataclass(frozen=True)
class TuneOutcome:
    """What tune concluded: the chosen trial; shares: {id(trial): share of the proxy's resamples in which
    it comes first} and ranks: {id(trial): rank score} for the trials the choice was made among; the sentences tune ends with, None when
    not said (no_good_setting: even the best setting hardly sees the defects; uncertain_choice: good
    images cannot settle the choice)."""

    chosen: object
    shares: dict
    ranks: dict
    no_good_setting: str | None = None
    uncertain_choice: str | None = None


def write_tuned_config(path: Path, base: LineSettings, trials, outcome: TuneOutcome, images: "TuneImages",
                       cores: int, budget_fps: float | None) -> None:
    """A line config (`defaults:` + `categories: {line: …}`) with a `tune:` section of every trial and
    the outcome's sentences (`no_good_setting`, `uncertain_choice`; null when not said)."""
    chosen = outcome.chosen
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
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "images": images.source, "cores": cores,
            "budget_fps": budget_fps, "defects": images.defects_source, "n_defects": len(images.defects),
            "no_good_setting": outcome.no_good_setting, "uncertain_choice": outcome.uncertain_choice,
            "proxy": "best aggregation's AUROC: a quarter of the good images (never in the proxy bank) against the "
                     "same images with two subtle synthetic defects each (crack, dark region, texture change, spot); "
                     "with --defects, blended with the known-bad images' AUROC (weight n / (n + 5)); those images "
                     "are only scored, never in a bank or a threshold",
            "rank_score": "what settings compared together are ranked by: each family's AUROC (at the setting's "
                          "aggregation) as a z value across them, spread floored at 0.01, averaged over the synthetic "
                          "families and blended with the known-bad images' z (weight n / (n + 5))",
            "halving": "rung 1: every setting on a sample of the good images; rung 2: the best few on all of them; "
                       "the choice is among rung 2's",
            "cost": "CPU ms per frame: preprocess + exported models (onnxruntime, 1 thread) + embed + search "
                    "(as the pipeline searches that bank; rung 1's exact search scaled from its sample bank) + "
                    "overhead; est. fps = cores × 1000 / CPU ms × 0.7",
            "first_in_resamples": f"share of {RESAMPLES} bootstrap draws of the held-out good images and their "
                                  f"defects in which the setting has the best proxy score (the settings the choice "
                                  f"was made among)",
            "tried": [_tried(t, chosen, cores, outcome) for t in trials],
        },
    }
    header = (f"# Written by `patchline tune` for line {base.line} from the good images in {images.source}.\n"
              f"# Train with: patchline train --line {base.line} --images {images.source} --config {path}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(record, sort_keys=False, width=120, allow_unicode=True))


@dataclass(frozen=True)
class TuneGrid:
    """The settings `patchline tune` tries: every combination of these (patchsizes None: the base line's;
    geometries 'line' and / or 'whole'), how many good images rung 1 tries them all on (`sample`) and
    how many of them rung 2 tries on every image (`keep`); two_sided: each setting also tries the two-sided
    statistic beside the one-sided aggregations."""

    backbones: Sequence[str]
    sizes: Sequence[int]
    layer_sets: Sequence[tuple[str, ...]]
    ratios: Sequence[float]
    patchsizes: Sequence[int] | None = None
    geometries: Sequence[str] = ("line",)
    keep: int = 4
    sample: int = 144
    two_sided: bool = False


@dataclass(frozen=True)
class TuneImages:
    """What tune reads: the good images (and where from), and optional known-bad images (scored only)."""

    good: Sequence
    source: str
    defects: Sequence = ()
    defects_source: str | None = None


def _tune_trials(base: LineSettings, images: TuneImages, grid: TuneGrid, budget_fps, cores: int,
                 weights: Path | None, progress: bool) -> list:
    """Every trial of the grid on `images` (exported models timed in a scratch folder)."""
    from patchline.app.jobs import cached_extractor, export_backbone
    from patchline.training.tune import Halving, TuneHooks, candidate_grid, tune_line

    candidates = candidate_grid(base, grid.backbones, grid.sizes, grid.layer_sets, grid.ratios, grid.patchsizes,
                                grid.geometries)
    for c in candidates:  # every setting is checked before anything runs
        c.settings(base)
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

        fits = None if budget_fps is None else (lambda t: t.frames_per_second(cores) >= budget_fps)
        return tune_line(base, images.good, candidates, TuneHooks(extractor_for, model_ms_for, fits), progress,
                         defects=images.defects, halving=Halving(grid.keep, grid.sample), two_sided=grid.two_sided)


def run_tune(base: LineSettings, images: TuneImages, out: Path, grid: TuneGrid,
             budget_fps: float | None = None, weights: Path | None = None, progress: bool = True) -> int:
    """Tune `base.line` on `images` over `grid`, print the table, write `out`; returns 0.

    PatchlineError (one sentence) when no setting meets the budget; nothing is written then. When no
    setting is good (training/tune.no_good_setting), or else when good images cannot settle the choice
    (training/tune_confidence.uncertain_choice), the sentence is printed last and recorded."""
    from patchline.training.tune import choose, no_good_setting, last_rung_fitting
    from patchline.training.tune_trial import trial_ranks
    from patchline.training.tune_confidence import best_shares, uncertain_choice

    if budget_fps is not None and not budget_fps > 0:
        raise ConfigError(f"--budget-fps must be a positive number, not {budget_fps}.")
    cores = os.cpu_count() or 1
    began = time.perf_counter()
    trials = _tune_trials(base, images, grid, budget_fps, cores, weights, progress)
    chosen = choose(trials, budget_fps, cores)
    warning = no_good_setting(chosen, grid.sizes)
    among = last_rung_fitting(trials, budget_fps, cores)
    shares = dict(zip(map(id, among), best_shares(among)))
    ranks = trial_ranks(among)
    uncertain = None if warning else uncertain_choice(among, shares, chosen)
    print(trial_table(trials, chosen, cores, budget_fps, shares, ranks))
    write_tuned_config(out, base, trials, TuneOutcome(chosen, shares, ranks, warning, uncertain), images, cores,
                       budget_fps)
    c = chosen.candidate
    print(f"chosen for line {base.line}: {c.label()}, aggregation {chosen.aggregation} (proxy AUROC "
          f"{chosen.best_auroc:.4f}, about {chosen.frames_per_second(cores):.0f} frames/s on {cores} cores; "
          f"tuned in {(time.perf_counter() - began) / 60:.1f} min)\n"
          f"wrote {out}; train with: patchline train --line {base.line} --images {images.source} --config {out}")
    for sentence in (uncertain, warning):
        if sentence:
            print(sentence)
    return 0
