"""Threshold and aggregation chosen from normal images only.

Part of the good training images is held out of the bank. Their image scores set the threshold
at a target false-alarm rate; the same images with synthetic defects pasted on them decide which
aggregation separates good from defective best. Test labels never enter.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from patchline.core.anomaly_map import anomaly_map
from patchline.core.metrics import auroc
from patchline.core.scoring import AGGREGATIONS, aggregate, aggregate_all
from patchline.core.synthetic import KINDS, make_defect
from patchline.errors import PatchlineError

MIN_IMAGES = 5


def check_image_count(n: int) -> None:
    """PatchlineError unless `n` good images are enough to build and calibrate a bank."""
    if n < MIN_IMAGES:
        raise PatchlineError(f"a line needs at least {MIN_IMAGES} good images to build and calibrate a bank, got {n}.")


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split n good images into (bank indices, held-out indices), both sorted int64.

    At least one image is held out and at least MIN_IMAGES - 1 stay for the bank.
    """
    check_image_count(n)
    n_hold = min(max(1, int(round(n * fraction))), n - (MIN_IMAGES - 1))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def synthetic_defects(images: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    """One synthetic defect per (H, W) or (H, W, 3) uint8 image, cycling cut-paste / scratch / blob."""
    rng = np.random.default_rng(seed + 7919)
    return [make_defect(image, KINDS[i % len(KINDS)], rng)[0] for i, image in enumerate(images)]


def threshold_at(scores: np.ndarray, false_alarm_rate: float) -> float:
    """Smallest held-out score s such that at most `false_alarm_rate` of scores exceed s."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - false_alarm_rate, method="higher"))


def _stats(scores: np.ndarray) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    return {"mean": float(s.mean()), "std": float(s.std()), "p50": float(np.median(s)),
            "p99": float(np.quantile(s, 0.99)), "max": float(s.max())}


def calibrate(
    normal_patch_scores: np.ndarray,
    defect_patch_scores: np.ndarray,
    aggregation: str,
    false_alarm_rate: float,
    imagesize: int,
) -> dict:
    """Choose the aggregation and thresholds from held-out normals and their synthetic defects.

    normal_patch_scores, defect_patch_scores: (n, h, w) float32 patch scores.
    aggregation: "auto" (choose by synthetic AUROC; ties go to the earlier name in AGGREGATIONS)
    or a fixed name. Returns the bank.json fields: aggregation, threshold, pixel_threshold,
    aggregation_choice, threshold_policy, normal_scores.
    """
    normal = aggregate_all(normal_patch_scores)
    defect = aggregate_all(defect_patch_scores)
    labels = np.r_[np.zeros(len(normal_patch_scores)), np.ones(len(defect_patch_scores))]
    separation = {name: auroc(labels, np.r_[normal[name], defect[name]]) for name in AGGREGATIONS}
    if aggregation == "auto":
        chosen = max(AGGREGATIONS, key=lambda name: (separation[name], -AGGREGATIONS.index(name)))
        how = "auto: highest AUROC of held-out normal images against the same images with synthetic defects"
    else:
        chosen = aggregation
        how = "fixed by the line's settings"
        if chosen not in normal:
            normal[chosen] = aggregate(normal_patch_scores, chosen)
    map_peaks = np.array([anomaly_map(p, imagesize).max() for p in normal_patch_scores])
    return {
        "aggregation": chosen,
        "threshold": threshold_at(normal[chosen], false_alarm_rate),
        "pixel_threshold": threshold_at(map_peaks, false_alarm_rate),
        "aggregation_choice": {
            "method": how,
            "synthetic_defect_kinds": list(KINDS),
            "n_normal": int(len(normal_patch_scores)),
            "n_synthetic": int(len(defect_patch_scores)),
            "synthetic_auroc": separation,
        },
        "threshold_policy": {
            "method": "quantile of held-out normal image scores at 1 - false_alarm_rate (method 'higher')",
            "false_alarm_rate": false_alarm_rate,
            "n_holdout": int(len(normal_patch_scores)),
            "pixel_threshold": "same quantile of the held-out normal anomaly maps' peak values",
        },
        "normal_scores": {name: _stats(scores) for name, scores in normal.items()},
    }
