"""`patchline tune` on an ELPV line's training cells, and — in this benchmark only — how its proxy
ranks the settings against the test cells' ranking.

Usage: python bench/tune.py [--cells mono|poly] [--budget-fps N] [--sizes 224,320] [--backbones …] [--patchsizes 3,5]

Tuning reads the training cells only (as `patchline tune` does). Here, each candidate's proxy bank
(built from the bank part of the training cells) also scores the test cells, and the table shows
that test AUROC beside the subtle-defect proxy and the bold-defect proxy (cut-paste, scratch,
blob: what calibration uses) — the test never chooses. Spearman's rank correlation of each proxy
with the test AUROC closes the table. Then the chosen setting is trained as a line (the ELPV
config's calibration) and evaluated on the test cells, beside the configured line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def split_half_spearman(labels: np.ndarray, scores: list[np.ndarray], splits: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """How far the test cells can rank the settings at all: the test cells split at random into two
    halves (each with half the normals and half the defects), the settings ranked by AUROC on each
    half, Spearman between the two rankings; (median, 5th, 95th percentile) over `splits` splits.

    labels (N,) 0/1 of the test cells; scores: per setting, (N,) image scores of those cells."""
    from patchline.core.metrics import auroc

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(splits):
        half = np.zeros(len(labels), dtype=bool)
        for label in (0, 1):
            idx = np.nonzero(labels == label)[0]
            half[rng.permutation(idx)[: len(idx) // 2]] = True
        a = [auroc(labels[half], s[half]) for s in scores]
        b = [auroc(labels[~half], s[~half]) for s in scores]
        values.append(spearman(a, b))
    return float(np.median(values)), float(np.percentile(values, 5)), float(np.percentile(values, 95))


def main() -> int:
    from patchline.app.tune import model_cost_ms, trial_table
    from patchline.core.calibration import synthetic_defects
    from patchline.core.metrics import auroc
    from patchline.core.scoring import aggregate_all
    from patchline.data.datasets import elpv_split
    from patchline.extractors.embeddings import as_image
    from patchline.models.export import export_models
    from patchline.models.mindspore_extractor import load_extractor
    from patchline.models.weights import resolve_weights
    from patchline.settings import load_category_table
    from patchline.training.tune import (Halving, TuneHooks, candidate_grid, choose, embed_features, extract_features, proxy_defects,
                                         split_for_proxy, tune_line)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", choices=("mono", "poly"), default="mono")
    parser.add_argument("--budget-fps", type=float)
    parser.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,mobilenet_v2")
    parser.add_argument("--sizes", default="224,320")
    parser.add_argument("--coreset", default="0.01,0.1")
    parser.add_argument("--patchsizes", default="3", help="patch sizes, comma-separated (e.g. 3,5)")
    parser.add_argument("--no-train", action="store_true", help="skip training and evaluating the chosen line")
    args = parser.parse_args()

    base = load_category_table(ROOT / "configs" / "elpv.yaml").get(f"elpv-{args.cells}")
    split = elpv_split(args.cells)
    train = [as_image(i) for i in split.train]
    test = [as_image(i) for i in list(split.test_normal) + list(split.test_defect)]
    labels = np.r_[np.zeros(len(split.test_normal)), np.ones(len(split.test_defect))]
    candidates = candidate_grid(base, args.backbones.split(","), [int(s) for s in args.sizes.split(",")],
                                [("layer2",), ("layer2", "layer3")], [float(r) for r in args.coreset.split(",")],
                                [int(p) for p in args.patchsizes.split(",")])
    extractors, costs, features = {}, {}, {}
    bold, test_auroc, test_scores = {}, {}, {}
    _, proxy_idx = split_for_proxy(len(train), base.seed)
    proxy_normals = [train[i] for i in proxy_idx]
    bold_images = synthetic_defects(proxy_normals, base.seed)

    def extractor_for(backbone):
        if backbone not in extractors:
            extractors[backbone] = load_extractor(backbone, ("layer2", "layer3"), cache_dir=ROOT / "models")[0]
        return extractors[backbone]

    scratch = tempfile.TemporaryDirectory(prefix="bench-tune-")

    def model_ms_for(candidate):
        key = (candidate.backbone, candidate.imagesize)
        if key not in costs:
            ckpt = resolve_weights(candidate.backbone, None, ROOT / "models")
            costs[key] = model_cost_ms(export_models(candidate.backbone, ckpt, candidate.imagesize,
                                                     Path(scratch.name)), candidate.imagesize)
        return costs[key]

    def embedded(key, images, candidate):
        """Features of images at the candidate's backbone and size (cached), embedded for its layers."""
        if key + (candidate.backbone, candidate.imagesize) not in features:
            settings = base.replace(backbone=candidate.backbone, imagesize=candidate.imagesize,
                                    resize=candidate.resize, layers=("layer2", "layer3"))
            features[key + (candidate.backbone, candidate.imagesize)] = extract_features(
                images, extractor_for(candidate.backbone), settings)[0]
        return embed_features(features[key + (candidate.backbone, candidate.imagesize)], candidate.layers,
                              candidate.patchsize)

    def on_bank(candidate, search, aggregation, proxy_scores):  # the benchmark's view; tuning never sees it
        if proxy_scores["rung"] == 1:
            return
        scores = aggregate_all(search.patch_scores(embedded(("test",), test, candidate)))
        test_auroc[candidate] = auroc(labels, scores[aggregation])
        test_scores[candidate] = scores[aggregation]
        normal = aggregate_all(search.patch_scores(embedded(("proxy",), proxy_normals, candidate)))
        defect = aggregate_all(search.patch_scores(embedded(("bold",), bold_images, candidate)))
        both = np.r_[np.zeros(len(proxy_normals)), np.ones(len(bold_images))]
        bold[candidate] = max(auroc(both, np.r_[normal[a], defect[a]]) for a in normal)

    began_wall, began_cpu = time.perf_counter(), time.process_time()
    trials = tune_line(base, train, candidates, TuneHooks(extractor_for, model_ms_for, on_bank=on_bank),
                       halving=Halving(keep=None))
    wall, cpu = time.perf_counter() - began_wall, time.process_time() - began_cpu
    cores = os.cpu_count() or 1
    chosen = choose(trials, args.budget_fps, cores)
    print(f"\nELPV {args.cells}: {len(train)} training cells ({len(proxy_idx)} of them the proxy's), "
          f"{len(test)} test cells; tuning (with the benchmark's extra test scoring) {wall:.0f} s wall, {cpu:.0f} s CPU")
    print(trial_table(trials, chosen, cores, args.budget_fps))
    print("\n| setting | bank | subtle proxy AUROC | bold proxy AUROC | test AUROC (bench only) | CPU ms | est. fps |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t in trials:
        mark = " **(chosen)**" if t is chosen else ""
        print(f"| {t.candidate.label()}, {t.aggregation}{mark} | {t.bank_patches} | {t.best_auroc:.4f} | "
              f"{bold[t.candidate]:.4f} | {test_auroc[t.candidate]:.4f} | {t.cpu_ms:.1f} | {t.frames_per_second(cores):.0f} |")
    tests = [test_auroc[t.candidate] for t in trials]
    print(f"\nSpearman rank correlation with the test AUROC: subtle proxy "
          f"{spearman([t.best_auroc for t in trials], tests):.2f}, bold proxy {spearman([bold[t.candidate] for t in trials], tests):.2f}")
    median, low, high = split_half_spearman(labels, [test_scores[t.candidate] for t in trials])
    print(f"the test cells' own agreement (split-half Spearman of the test ranking, 200 random halves): median "
          f"{median:.2f}, 90 % of splits within {low:.2f} … {high:.2f}")
    best = max(trials, key=lambda t: test_auroc[t.candidate])
    print(f"best by test (for reference only): {best.candidate.label()} {test_auroc[best.candidate]:.4f}; "
          f"chosen: {chosen.candidate.label()} {test_auroc[chosen.candidate]:.4f} (proxy banks: 3/4 of the training cells)")
    if not args.no_train:
        train_chosen(base, chosen, split, labels)
    scratch.cleanup()
    return 0


def train_chosen(base, chosen, split, labels) -> None:
    """Train the chosen setting as the line (all training cells, the config's calibration) and evaluate it."""
    from bench.elpv import train_and_score
    from patchline.core.metrics import auroc
    from patchline.core.scoring import aggregate_all

    settings = chosen.candidate.settings(base).replace(aggregation=chosen.aggregation)
    trained = train_and_score(settings, split)
    meta = trained["meta"]
    scores = aggregate_all(trained["patch_scores"], [meta.aggregation])
    print(f"chosen setting trained as the line ({settings.calibration}, {trained['train_s']:.0f} s): bank "
          f"{meta.n_patches} patches, aggregation {meta.aggregation}, test image AUROC "
          f"{auroc(labels, scores[meta.aggregation]):.4f}")


if __name__ == "__main__":
    sys.exit(main())
