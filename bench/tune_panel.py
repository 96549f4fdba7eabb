"""`patchline tune` judged by regret on a panel of lines where the setting may matter (benchmark only:
the test split chooses nothing).

Lines (real ELPV cells, real defect labels, the fixed split of docs/benchmarks.md):
- mono, poly: the cells as they are (300 px);
- wide: mono cells seen by a wider camera: each cell downscaled to WIDE_PX before it becomes the frame;
- far: the same seen from further away (FAR_PX): a crack is a pixel or two wide, so the image size matters;
- jitter: mono cells placed as an unfixtured conveyor would: a seeded random shift (up to 4 % of
  the side) and rotation (up to 3°) per cell, train and test alike, the border black.

Per line, REAL_POOL of the split's defective cells (seeded) move to the training side as the pool of
known-bad images `--defects` would get; the test is every test normal, every training normal the
line did not sample (tune never sees them) and every other defective cell (or --test-defects of them,
seeded), the same for every row. Training cells are sampled (--train, seeded). `tune_line` runs on the training side with every setting taken to
rung 2 (keep=None) so that every setting has a bank and a test AUROC; tune's own choice is then
re-enacted from the proxies exactly as successive halving makes it (rung 1's best KEEP, then the
best of those in rung 2), with 0, 5 (REAL_DRAWS seeded draws from the pool) and 20 real defects.
Regret = best test AUROC in the grid − the chosen setting's, with a paired bootstrap interval.
One run's regret is one draw: the luck table also draws tune's own proxy images again (RESAMPLES
bootstrap draws of its scored good images and synthetic defects, halving re-enacted) and gives the
regret over those draws, and the floor: the regret at which the test's own best setting is measured
on resampled tests (what a chooser that knew every setting's true AUROC would be measured at).
Exported-model costs are not measured here (no budget); "tune min" is tune with every setting taken
to rung 2, the benchmark's test scoring taken out.

    python -m bench.tune_panel [--lines mono,poly,wide,far,jitter] [--train 200] [--test-defects N] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LINES = ("mono", "poly", "wide", "far", "jitter")
WIDE_PX = 112
FAR_PX = 64
FRAME_PX = {"wide": WIDE_PX, "far": FAR_PX}  # lines whose cells are downscaled before they become frames
REAL_POOL = 20
REAL_DRAWS = 10
BACKBONES = ("efficientnet_lite0", "mobilenet_v2")
LAYER_SETS = (("layer2",), ("layer2", "layer3"))
DEFAULT_AGGREGATION = "topk5"  # what configs/elpv.yaml's lines choose by their bold-defect rule (bench/elpv.py)


def sizes_for(line: str) -> list[int]:
    """Grid image sizes: 224 and 320 (above a downscaled line's frame: upsampling), and such a frame itself."""
    return [FRAME_PX[line], 224, 320] if line in FRAME_PX else [224, 320]


def jittered(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The cell shifted by up to 4 % of its side and turned by up to 3°, black where nothing was."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-3, 3)), 1.0)
    matrix[:, 2] += rng.uniform(-0.04, 0.04, size=2) * np.array([w, h])
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def line_images(line: str, n_train: int, n_test_defects: int | None, seed: int = 0) -> dict:
    """{"train": [...], "real": [REAL_POOL defects], "test": [...], "labels": (N,) 0/1} of one panel line:
    n_train training cells; a test of every test normal, every training normal not sampled, and
    n_test_defects of the remaining defective cells (seeded; None: all of them)."""
    import cv2

    from patchline.data.datasets import elpv_split

    split = elpv_split("poly" if line == "poly" else "mono")
    rng = np.random.default_rng(seed)
    sampled = np.sort(rng.permutation(len(split.train))[:n_train])
    train = [split.train[i] for i in sampled]
    pool = np.sort(rng.permutation(len(split.test_defect))[:REAL_POOL])
    real = [split.test_defect[i] for i in pool]
    rest = np.setdiff1d(np.arange(len(split.test_defect)), pool)
    defects = [split.test_defect[i] for i in np.sort(rng.permutation(rest)[:n_test_defects])]
    normals = list(split.test_normal) + [split.train[i] for i in np.setdiff1d(np.arange(len(split.train)), sampled)]
    test = normals + defects
    labels = np.r_[np.zeros(len(normals)), np.ones(len(defects))]
    if line in FRAME_PX:
        side = FRAME_PX[line]
        shrink = lambda im: cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA)
        train, real, test = [shrink(i) for i in train], [shrink(i) for i in real], [shrink(i) for i in test]
    if line == "jitter":
        moves = np.random.default_rng(seed + 7)
        train, real, test = ([jittered(i, moves) for i in part] for part in (train, real, test))
    return {"train": train, "real": real, "test": test, "labels": labels}


def run_line(line: str, n_train: int, n_test_defects: int | None) -> dict:
    """Tune on the line's training side, score every setting's bank on the test; returns what the table needs."""
    from patchline.core.scoring import aggregate_all
    from patchline.models.mindspore_extractor import load_extractor
    from patchline.settings import load_category_table
    from patchline.training.tune import Halving, TuneHooks, candidate_grid, tune_line
    from patchline.training.tune_trial import embed_features, extract_features

    base = load_category_table(ROOT / "configs" / "elpv.yaml").get(f"elpv-{'poly' if line == 'poly' else 'mono'}")
    data = line_images(line, n_train, n_test_defects)
    candidates = candidate_grid(base, BACKBONES, sizes_for(line), LAYER_SETS, [base.coreset_ratio])
    extractors, test_features, record = {}, {}, {"proxy": {}, "test": {}}
    scoring = {"wall": 0.0, "cpu": 0.0}  # the benchmark's own test scoring, taken out of tune's time

    def extractor_for(backbone):
        if backbone not in extractors:
            extractors[backbone] = load_extractor(backbone, ("layer2", "layer3"), cache_dir=ROOT / "models")[0]
        return extractors[backbone]

    def on_bank(candidate, search, aggregation, scores):  # the benchmark's view; tuning never sees it
        key = f"{candidate.backbone} {candidate.imagesize}px {'+'.join(candidate.layers)}"
        record["proxy"].setdefault(key, {})[str(scores["rung"])] = {
            "normal": {a: v.tolist() for a, v in scores["normal"].items()},
            "defect": {a: v.tolist() for a, v in scores["defect"].items()}, "families": scores["families"].tolist()}
        if scores["rung"] == 1:
            return
        wall, cpu = time.perf_counter(), time.process_time()
        group = (candidate.backbone, candidate.imagesize)
        if group not in test_features:
            settings = base.replace(backbone=candidate.backbone, imagesize=candidate.imagesize,
                                    resize=candidate.resize, layers=("layer2", "layer3"))
            test_features[group] = extract_features(data["test"], extractor_for(candidate.backbone), settings)[0]
        emb = embed_features(test_features[group], candidate.layers, candidate.patchsize)
        record["test"][key] = {a: v.tolist() for a, v in aggregate_all(search.patch_scores(emb)).items()}
        scoring["wall"] += time.perf_counter() - wall
        scoring["cpu"] += time.process_time() - cpu

    began, began_cpu = time.perf_counter(), time.process_time()
    tune_line(base, data["train"], candidates, TuneHooks(extractor_for, lambda c: {"layer2": 0.0, "layer3": 0.0},
                                                         on_bank=on_bank), progress=True, defects=data["real"],
              halving=Halving(keep=None))
    default = f"{base.backbone} {base.imagesize}px {'+'.join(base.layers)}"
    return {"line": line, "n_train": len(data["train"]), "n_real": len(data["real"]), "labels": data["labels"].tolist(),
            "frame_px": int(data["train"][0].shape[0]), "default": default,
            "seconds": time.perf_counter() - began - scoring["wall"], "cpu_seconds": time.process_time() - began_cpu - scoring["cpu"],
            **record}


STATISTICS = ("tune", "pooled", "worst family", "worst + pooled", "detected at 10 %")


def statistic(normal: dict, defect: dict, families: np.ndarray, name: str) -> tuple[str, float]:
    """(aggregation, value) of a candidate proxy statistic over the defects given, at its best
    aggregation: 'pooled' (one AUROC over every family), 'worst family' (the lowest family AUROC),
    'worst + pooled' (their mean), 'detected at 10 %' (share of defects above the normals' 90th
    percentile, a low-false-alarm view). Tune's own ranking is ranked(…, "tune")."""
    from patchline.core.metrics import auroc

    def separation(a: str, rows: np.ndarray) -> float:
        return auroc(np.r_[np.zeros(len(normal[a])), np.ones(int(rows.sum()))], np.r_[normal[a], defect[a][rows]])

    def value(a: str) -> float:
        if name == "detected at 10 %":
            return float(np.mean(defect[a] > np.quantile(normal[a], 0.9)))
        pooled = separation(a, np.ones(len(families), dtype=bool)) if name != "worst family" else None
        if name == "pooled":
            return pooled
        worst = min(separation(a, families == f) for f in set(families.tolist()))
        return worst if name == "worst family" else (worst + pooled) / 2

    best = max(normal, key=value)
    return best, value(best)


def proxy_of(scores: dict, real_rows: np.ndarray | None, name: str = "pooled") -> tuple[str, float]:
    """(aggregation, proxy score) of one trial's proxy scores with the real defects `real_rows` (indices
    into the pool) kept and the other real defects dropped (None: none kept); `name`: "pooled" (the
    proxy AUROC tune shows and picks a setting's aggregation by, tune_trial.proxy_score: the synthetic
    families pooled, blended with the real defects; tune's ranking before family z), "real only", or
    one of STATISTICS but "tune"."""
    normal, defect, families = kept_scores(scores, real_rows)
    if name == "real only":
        real = families == REAL_FAMILY
        return statistic(normal, {a: v[real] for a, v in defect.items()}, families[real], "worst family")
    if name != "pooled":
        return statistic(normal, defect, families, name)
    from patchline.training.tune_trial import proxy_score

    aggregation, score, _ = proxy_score(normal, defect, families)
    return aggregation, score[aggregation]


REAL_FAMILY = "real"  # tune_trial.REAL


def kept_scores(scores: dict, real_rows: np.ndarray | None) -> tuple[dict, dict, np.ndarray]:
    """(normal {aggregation: (n,)}, defect {aggregation: (m,)}, families (m,)) of one trial's proxy scores
    with the real defects `real_rows` (indices into the pool) kept and the others dropped (None: none)."""
    families = np.array(scores["families"])
    real_at = np.flatnonzero(families == REAL_FAMILY)
    keep = np.ones(len(families), dtype=bool)
    keep[real_at] = False
    if real_rows is not None:
        keep[real_at[real_rows]] = True
    normal = {a: np.array(v) for a, v in scores["normal"].items()}
    defect = {a: np.array(v)[keep] for a, v in scores["defect"].items()}
    return normal, defect, families[keep]


def ranked(proxies: dict, real_rows: np.ndarray | None, name: str = "tune") -> dict:
    """{setting: (aggregation, value)} of settings compared together ({setting: proxy scores}): "tune"
    ranks them as patchline tune does (tune_trial.family_rank_scores across them, each at the
    aggregation its pooled proxy picks); any other name scores each setting alone (proxy_of)."""
    if name != "tune":
        return {k: proxy_of(v, real_rows, name) for k, v in proxies.items()}
    from patchline.training.tune_trial import family_rank_scores, proxy_score

    parts = {}
    for k, v in proxies.items():
        normal, defect, families = kept_scores(v, real_rows)
        aggregation, _, per_family = proxy_score(normal, defect, families)
        parts[k] = (aggregation, per_family, int(np.sum(families == REAL_FAMILY)))
    values = family_rank_scores([p[1] for p in parts.values()], max((p[2] for p in parts.values()), default=0))
    return {k: (parts[k][0], float(v)) for k, v in zip(parts, values)}


def choose_by(first: dict, second: dict, keep: int | None, real_rows, name: str) -> str:
    """The setting chosen by successive halving from rung 1's and rung 2's {setting: proxy scores}: the
    best `keep` of rung 1 (None: no halving, every setting; 0: rung 1's best alone), then the best of
    those in rung 2, each rung ranked by `name` (ranked)."""
    first_rank = ranked(first, real_rows, name) if first else {}
    if keep == 0 and first_rank:
        return max(first_rank, key=lambda k: first_rank[k][1])
    promoted = sorted(first_rank, key=lambda k: -first_rank[k][1])[:keep] if first_rank and keep else list(second)
    second_rank = ranked({k: second[k] for k in promoted}, real_rows, name)
    return max(promoted, key=lambda k: second_rank[k][1])


def choice(result: dict, real_rows: np.ndarray | None, keep: int | None, name: str = "tune") -> tuple[str, dict]:
    """(setting tune chooses, {setting: aggregation}) by successive halving with `keep` in rung 2
    (None: no halving, the best rung-2 proxy; 0: rung 1's proxy alone)."""
    first = {k: v["1"] for k, v in result["proxy"].items() if "1" in v}
    second = {k: v["2"] for k, v in result["proxy"].items()}
    aggregation = {k: a for k, (a, _) in ranked(second, real_rows, "pooled" if name == "tune" else name).items()}
    return choose_by(first, second, keep, real_rows, name), aggregation


def condition(result: dict, real_rows: np.ndarray | None, keep: int | None, name: str = "tune") -> dict:
    """One line under one real-defect condition: chosen, best and default settings, regret with its
    paired bootstrap interval, and chosen − default with its interval."""
    from patchline.core.intervals import paired_bootstrap_difference
    from patchline.core.metrics import auroc

    labels = np.array(result["labels"])
    chosen, aggregation = choice(result, real_rows, keep, name)
    scores = {k: np.array(result["test"][k][aggregation[k]]) for k in aggregation}
    test = {k: auroc(labels, s) for k, s in scores.items()}
    best = max(test, key=test.get)
    default = np.array(result["test"][result["default"]][DEFAULT_AGGREGATION])
    return {"chosen": chosen, "best": best, "test": test, "aggregation": aggregation,
            "default": auroc(labels, default),
            "regret": paired_bootstrap_difference(labels, scores[best], scores[chosen]),
            "vs_default": paired_bootstrap_difference(labels, scores[chosen], default)}


def summary_row(result: dict, keep: int) -> str:
    """The panel table's row of one line."""
    none = condition(result, None, keep)
    five = [condition(result, np.sort(np.random.default_rng(d).permutation(result["n_real"])[:5]), keep)
            for d in range(REAL_DRAWS)]
    twenty = condition(result, np.arange(result["n_real"]), keep)
    r0, d0, r20 = none["regret"], none["vs_default"], twenty["regret"]
    five_regrets = [c["regret"][0] for c in five]
    test = none["test"]
    return (f"| {result['line']} ({result['frame_px']} px, {result['n_train']} train, {len(result['labels'])} test) | "
            f"{none['best']} {test[none['best']]:.4f} | {result['default']} {DEFAULT_AGGREGATION} {none['default']:.4f} | "
            f"{none['chosen']} {test[none['chosen']]:.4f} | {r0[0]:.4f} [{r0[1]:.4f}, {r0[2]:.4f}] | "
            f"{d0[0]:+.4f} [{d0[1]:+.4f}, {d0[2]:+.4f}] | {np.mean(five_regrets):.4f} (worst {max(five_regrets):.4f}) | "
            f"{twenty['chosen']}: {r20[0]:.4f} [{r20[1]:.4f}, {r20[2]:.4f}] | {result['seconds'] / 60:.1f} "
            f"({result.get('cpu_seconds', float('nan')) / 60:.1f}) |")


RESAMPLES = 100


def resampled(scores: dict, normal_rows: np.ndarray, defect_rows: np.ndarray) -> dict:
    """A trial's proxy scores with its scored good images and its defects drawn again (rows may repeat)."""
    return {"normal": {a: np.asarray(v)[normal_rows] for a, v in scores["normal"].items()},
            "defect": {a: np.asarray(v)[defect_rows] for a, v in scores["defect"].items()},
            "families": np.asarray(scores["families"])[defect_rows]}


def resampled_regret(result: dict, keep: int, draws: int = RESAMPLES, seed: int = 0,
                     name: str = "tune") -> tuple[np.ndarray, list]:
    """((draws,) regret, [setting chosen in each draw]) of tune's halving choice (no real defects) when its proxy images, the scored good
    images and the synthetic defects of each rung, are bootstrap-resampled (the same rows for every
    setting, as tune scores every setting on the same images): how much of one run's regret is the
    luck of which good images tune happened to hold out."""
    from patchline.core.metrics import auroc
    from patchline.training.tune_trial import REAL

    labels = np.array(result["labels"])
    rng = np.random.default_rng(seed)
    out, chosen_in, tested = [], [], {}  # tested: {(setting, aggregation): test AUROC}, the same in every draw
    for _ in range(draws):
        picked = {}
        for rung in ("1", "2"):
            any_scores = next((v[rung] for v in result["proxy"].values() if rung in v), None)
            if any_scores is None:
                continue
            synthetic = np.flatnonzero(np.asarray(any_scores["families"]) != REAL)
            n_normal = len(next(iter(any_scores["normal"].values())))
            rows = (rng.integers(0, n_normal, n_normal), rng.choice(synthetic, len(synthetic)))
            picked[rung] = {k: resampled(v[rung], *rows) for k, v in result["proxy"].items() if rung in v}
        chosen = choose_by(picked.get("1", {}), picked["2"], keep, None, name)
        second = ranked(picked["2"], None, "pooled" if name == "tune" else name)
        for k, (a, _) in second.items():
            if (k, a) not in tested:
                tested[k, a] = auroc(labels, np.asarray(result["test"][k][a]))
        test = {k: tested[k, a] for k, (a, _) in second.items()}
        out.append(max(test.values()) - test[chosen])
        chosen_in.append(chosen)
    return np.array(out), chosen_in


def regret_floor(result: dict, keep: int, draws: int = RESAMPLES, seed: int = 0) -> float:
    """Mean regret, on bootstrap resamples of the test, of the setting that is best on the whole test:
    what even a chooser that knew every setting's true AUROC would be measured at by a test this size."""
    from patchline.core.metrics import auroc

    labels = np.array(result["labels"])
    aggregation = condition(result, None, keep)["aggregation"]
    scores = {k: np.array(result["test"][k][a]) for k, a in aggregation.items()}
    full = {k: auroc(labels, v) for k, v in scores.items()}
    best = max(full, key=full.get)
    rng = np.random.default_rng(seed)
    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    out = []
    for _ in range(draws):
        rows = np.r_[rng.choice(good, len(good)), rng.choice(bad, len(bad))]
        test = {k: auroc(labels[rows], v[rows]) for k, v in scores.items()}
        out.append(max(test.values()) - test[best])
    return float(np.mean(out))


def luck_row(result: dict, keep: int) -> str:
    """This run's regret beside the regret over RESAMPLES resamples of tune's proxy images, and how
    often this run's choice is chosen again."""
    base = condition(result, None, keep)
    draws, chosen = resampled_regret(result, keep)
    return (f"| {result['line']} | {base['regret'][0]:.4f} | {draws.mean():.4f} | {np.median(draws):.4f} | "
            f"{np.quantile(draws, 0.9):.4f} | {np.mean(draws <= 0.01):.0%} | "
            f"{np.mean([c == base['chosen'] for c in chosen]):.0%} | {regret_floor(result, keep):.4f} |")


def setting_table(result: dict) -> str:
    """Every setting of one line: rung-1 and rung-2 proxy (synthetic only and with all 20 real defects),
    test AUROC (benchmark only), and Spearman of each proxy with the test."""
    from scipy.stats import spearmanr

    none, twenty = condition(result, None, 4), condition(result, np.arange(result["n_real"]), 4)
    rows = [f"{result['line']}: | setting | rung 1 proxy | rung 2 proxy | rung 2 proxy + 20 real | test AUROC "
            f"(bench only) |", "|---|---:|---:|---:|---:|"]
    keys = list(result["test"])
    proxy = {k: proxy_of(result["proxy"][k]["2"], None)[1] for k in keys}
    with_real = {k: proxy_of(result["proxy"][k]["2"], np.arange(result["n_real"]))[1] for k in keys}
    for k in keys:
        first = proxy_of(result["proxy"][k]["1"], None)[1] if "1" in result["proxy"][k] else float("nan")
        mark = " **(chosen)**" if k == none["chosen"] else ""
        rows.append(f"| {k}, {none['aggregation'][k]}{mark} | {first:.4f} | {proxy[k]:.4f} | {with_real[k]:.4f} | "
                    f"{none['test'][k]:.4f} |")
    tests = [none["test"][k] for k in keys]
    rows.append(f"Spearman with the test AUROC: proxy {spearmanr([proxy[k] for k in keys], tests).statistic:.2f}, "
                f"proxy + 20 real {spearmanr([with_real[k] for k in keys], [twenty['test'][k] for k in keys]).statistic:.2f}")
    return "\n".join(rows)


def variants_row(result: dict, keep: int, resamples: bool = False) -> str:
    """Regret (no real defects) of tune's halving choice under each candidate statistic, and of the
    pooled proxy without halving (rung 2 on every setting) and with rung 1 alone; resamples: the
    statistics' mean regret over RESAMPLES draws of tune's proxy images instead (resampled_regret; the
    same draws for every statistic), and tune's − pooled's with a 95 % bootstrap interval over the draws."""
    if resamples:
        draws = {name: resampled_regret(result, keep, name=name)[0] for name in STATISTICS}
        diff = draws["tune"] - draws["pooled"]
        means = np.random.default_rng(1).choice(diff, (2000, len(diff))).mean(axis=1)
        low, high = np.quantile(means, [0.025, 0.975])
        return (f"| {result['line']} | " + " | ".join(f"{d.mean():.4f}" for d in draws.values())
                + f" | {diff.mean():+.4f} [{low:+.4f}, {high:+.4f}] |")
    cells = [condition(result, None, keep, name)["regret"][0] for name in STATISTICS]
    cells += [condition(result, None, None)["regret"][0], condition(result, None, 0)["regret"][0]]
    return f"| {result['line']} | " + " | ".join(f"{c:.4f}" for c in cells) + " |"


def real_row(result: dict, keep: int) -> str:
    """Regret with 5 (mean of REAL_DRAWS draws) and 20 real defects: tune's ranking, the pooled AUROC blend
    it ranked by before, and the real defects alone."""
    draws = [np.sort(np.random.default_rng(d).permutation(result["n_real"])[:5]) for d in range(REAL_DRAWS)]
    cells = []
    for name in ("tune", "pooled", "real only"):
        cells.append(np.mean([condition(result, rows, keep, name)["regret"][0] for rows in draws]))
        cells.append(condition(result, np.arange(result["n_real"]), keep, name)["regret"][0])
    return f"| {result['line']} | " + " | ".join(f"{c:.4f}" for c in cells) + " |"


def two_sided(scores: dict, normal: dict) -> np.ndarray:
    """The two-sided statistic of bench/score_variants.py: max(z of topk5, z of −mean), each z
    standardised by `normal` (tune's held-out good images of the same bank, never test images).
    scores / normal: {aggregation: (n,) image scores} → (n,) float64."""
    def z(values, reference):
        reference = np.asarray(reference, dtype=np.float64)
        return (np.asarray(values, dtype=np.float64) - reference.mean()) / max(reference.std(), 1e-12)

    return np.maximum(z(scores["topk5"], normal["topk5"]), z(-np.asarray(scores["mean"]), -np.asarray(normal["mean"])))


def two_sided_row(result: dict, keep: int) -> str:
    """Would the two-sided statistic have helped this line? For tune's chosen setting (no real defects):
    proxy AUROC at its aggregation against the two-sided statistic's, test AUROC likewise (bench only),
    and the best test AUROC of the grid with and without the two-sided statistic."""
    from patchline.core.intervals import paired_bootstrap_difference
    from patchline.core.metrics import auroc
    from patchline.training.tune_trial import REAL

    labels = np.array(result["labels"])
    base = condition(result, None, keep)
    chosen, aggregation = base["chosen"], base["aggregation"]

    def proxy_two_sided(key):
        proxy = result["proxy"][key]["2"]
        synthetic = np.array(proxy["families"]) != REAL
        normal = two_sided(proxy["normal"], proxy["normal"])
        defect = two_sided({a: np.array(v)[synthetic] for a, v in proxy["defect"].items()}, proxy["normal"])
        return auroc(np.r_[np.zeros(len(normal)), np.ones(len(defect))], np.r_[normal, defect])

    test_two = {k: two_sided(result["test"][k], result["proxy"][k]["2"]["normal"]) for k in result["test"]}
    best_two = max(test_two, key=lambda k: auroc(labels, test_two[k]))
    diff = paired_bootstrap_difference(labels, test_two[chosen], np.array(result["test"][chosen][aggregation[chosen]]))
    return (f"| {result['line']} | {chosen} | {proxy_of(result['proxy'][chosen]['2'], None, 'pooled')[1]:.4f} "
            f"({aggregation[chosen]}) | {proxy_two_sided(chosen):.4f} | {base['test'][chosen]:.4f} | "
            f"{auroc(labels, test_two[chosen]):.4f} | {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}] | "
            f"{max(base['test'].values()):.4f} | {best_two} {auroc(labels, test_two[best_two]):.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default=",".join(LINES))
    parser.add_argument("--train", type=int, default=200, help="training cells sampled per line (seeded)")
    parser.add_argument("--test-defects", type=int, default=None, help="defective test cells sampled per line (seeded; "
                                                                        "default: all but the --defects pool)")
    parser.add_argument("--quick", action="store_true", help="120 training cells, 80 test defects per line (smoke test)")
    parser.add_argument("--keep", type=int, default=4, help="settings rung 2 takes (as patchline tune --keep)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "patchline-tune-panel",
                        help="folder for each line's JSON (kept: a rerun reports without recomputing)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n_train, n_test_defects = (120, 80) if args.quick else (args.train, args.test_defects)
    for line in [args.one] if args.one else args.lines.split(","):
        if line not in LINES:
            parser.error(f"--lines: '{line}' is not a panel line ({', '.join(LINES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        (args.out / f"{args.one}.json").write_text(json.dumps(run_line(args.one, n_train, n_test_defects)))
        return 0
    results = []
    for line in args.lines.split(","):
        if not (args.out / f"{line}.json").exists():  # each line in its own process (memory); kept for reruns
            limit = [] if n_test_defects is None else ["--test-defects", str(n_test_defects)]
            subprocess.run([sys.executable, "-m", "bench.tune_panel", "--one", line, "--train", str(n_train), *limit,
                            "--out", str(args.out)], check=True, cwd=ROOT)
        results.append(json.loads((args.out / f"{line}.json").read_text()))
    print("| line | best by test (bench only) | configured default | tune's choice, no real defects | regret "
          "[paired 95 %] | choice − default [paired 95 %] | regret, 5 real (mean of 10 draws) | 20 real: choice, "
          "regret | tune min (CPU min) |")
    print("|---|---|---|---|---|---|---|---|---:|")
    for result in results:
        print(summary_row(result, args.keep))
    print("\nregret with no real defects, by proxy statistic (halving as tune; tune: family z, pooled: the pooled "
          "AUROC tune ranked by before) and by halving scheme (tune's ranking)")
    print("| line | " + " | ".join(STATISTICS) + " | no halving | rung 1 only |")
    print("|---" * (len(STATISTICS) + 3) + "|")
    for result in results:
        print(variants_row(result, args.keep))
    print(f"\nthe same statistics, mean regret over {RESAMPLES} draws of tune's proxy images (as the luck table below)")
    print("| line | " + " | ".join(STATISTICS) + " | tune − pooled [95 % over the draws] |")
    print("|---" * (len(STATISTICS) + 2) + "|")
    for result in results:
        print(variants_row(result, args.keep, resamples=True))
    print("\nregret with real defects: tune's ranking (family z, real defects' z weighted n / (n + 5)), the pooled "
          "AUROC blend (same weight), and the real defects alone")
    print("| line | tune, 5 real (mean of 10 draws) | tune, 20 real | pooled, 5 | pooled, 20 | real only, 5 | "
          "real only, 20 |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(real_row(result, args.keep))
    print("\nthe two-sided statistic (max of z(topk5), z(−mean); z from tune's held-out good images) on tune's "
          "choice, no real defects")
    print("| line | tune's choice | proxy, its aggregation | proxy, two-sided | test, its aggregation | test, "
          "two-sided | two-sided − its aggregation [paired 95 %] | best test in the grid | best two-sided in the grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(two_sided_row(result, args.keep))
    print(f"\nregret with no real defects when tune's proxy images (its scored good images and synthetic defects) are "
          f"drawn again: {RESAMPLES} bootstrap resamples, halving as tune")
    print("| line | this run | mean over resamples | median | 90th percentile | resamples with regret ≤ 0.01 | "
          "this run's choice chosen again | floor: the test's best setting on resampled tests |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        print(luck_row(result, args.keep))
    for result in results:
        print("\n" + setting_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
