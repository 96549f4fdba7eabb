"""Threshold and aggregation chosen from normal images only.

Every good training image gets a held-out score: scored against a bank that does not hold its own
patches (training.train: leave-one-out, cross-fitted folds, or a held-out part). Those scores set
the threshold at a target false-alarm rate, with what that promises (a binomial bound); the same
images with synthetic defects pasted on them decide which aggregation separates good from
defective best. Every held-out score is kept, so the threshold can later move to another rate
without retraining. Test labels never enter.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from patchline.core.anomaly_map import anomaly_map
from patchline.core.intervals import images_needed, upper_bound
from patchline.core.metrics import auroc
from patchline.core.scoring import AGGREGATIONS, TWO_SIDED, aggregate, is_defect, normal_and_defect_scores
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


CONFIDENCE = 0.95  # of the false-alarm bound a threshold states


def threshold_at(scores: np.ndarray, false_alarm_rate: float) -> float:
    """The conformal threshold: the k-th smallest of n held-out normal scores, k = ⌈(n + 1)(1 − rate)⌉
    (the highest score when n is too small), so a new normal image exceeds it with probability at
    most `false_alarm_rate` on average over calibration sets. scores: (n,) float."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    k = min(len(s), math.ceil((len(s) + 1) * (1.0 - false_alarm_rate) - 1e-9))
    return float(s[max(k, 1) - 1])


def promise(scores: np.ndarray, threshold: float, false_alarm_rate: float) -> dict:
    """What a threshold promises from held-out normal scores (n,): the exact one-sided 95 % bound
    on the false-alarm rate of new normal images, the average rate, and a warning when there are
    fewer images than the target rate needs. bank.json's `threshold_policy.promise`."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    n, above = len(s), int(is_defect(s, threshold).sum())
    bound = upper_bound(above, n, CONFIDENCE)
    out = {"false_alarm_rate_at_most": bound, "confidence": CONFIDENCE, "expected_false_alarm_rate": (above + 1) / (n + 1),
           "n_images": n, "n_above": above,
           "text": f"false alarms <= {100 * bound:.1f} % with {100 * CONFIDENCE:.0f} % confidence, from {n} good "
                   f"images ({above} above the threshold)"}
    needed = images_needed(false_alarm_rate)
    if n < needed:
        out["warning"] = (f"{n} held-out good images cannot support a {100 * false_alarm_rate:g} % false-alarm "
                          f"target: even a threshold at the highest score lets about {100 / (n + 1):.1f} % of good "
                          f"parts alarm; give at least {needed} good images")
    return out


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
    or a fixed name (two-sided: its reference is the same held-out normals' spread, so the conformal
    threshold is exact only up to that fit). Returns the bank.json fields: aggregation,
    score_reference (the two-sided statistic's, else None), threshold, pixel_threshold,
    aggregation_choice, threshold_policy, normal_scores.
    """
    normal, defect, reference = normal_and_defect_scores(normal_patch_scores, defect_patch_scores,
                                                         aggregation == TWO_SIDED)
    labels = np.r_[np.zeros(len(normal_patch_scores)), np.ones(len(defect_patch_scores))]
    separation = {name: auroc(labels, np.r_[normal[name], defect[name]]) for name in defect}
    if aggregation == "auto":
        chosen = max(AGGREGATIONS, key=lambda name: (separation[name], -AGGREGATIONS.index(name)))
        how = "auto: highest AUROC of held-out normal images against the same images with synthetic defects"
    else:
        chosen = aggregation
        how = "fixed by the line's settings"
        if chosen not in normal:
            normal[chosen] = aggregate(normal_patch_scores, chosen)
    map_peaks = np.array([anomaly_map(p, imagesize).max() for p in normal_patch_scores])
    threshold = threshold_at(normal[chosen], false_alarm_rate)
    return {
        "aggregation": chosen,
        "score_reference": reference,
        "threshold": threshold,
        "pixel_threshold": threshold_at(map_peaks, false_alarm_rate),
        "aggregation_choice": {
            "method": how,
            "synthetic_defect_kinds": list(KINDS),
            "n_normal": int(len(normal_patch_scores)),
            "n_synthetic": int(len(defect_patch_scores)),
            "synthetic_auroc": separation,
        },
        "threshold_policy": {
            "method": "conformal: the ceil((n + 1)(1 - false_alarm_rate))-th smallest held-out normal image score",
            "false_alarm_rate": false_alarm_rate,
            "n_holdout": int(len(normal_patch_scores)),
            "pixel_threshold": "same order statistic of the held-out normal anomaly maps' peak values",
            "promise": promise(normal[chosen], threshold, false_alarm_rate),
        },
        "normal_scores": {name: _stats(scores) for name, scores in normal.items()},
        "calibration_scores": {"image": {name: [float(v) for v in scores] for name, scores in normal.items()},
                               "map_peak": [float(v) for v in map_peaks]},
    }


def moved_threshold(calibration_scores: dict, aggregation: str, false_alarm_rate: float | None = None,
                    value: float | None = None) -> dict:
    """A threshold moved to another target rate (or set to `value`) from a bank's kept held-out
    scores (bank.json `calibration_scores`). Returns the bank.json fields that change: threshold,
    pixel_threshold and threshold_policy (with its promise). The pixel threshold follows at the
    rate the new threshold lets through on the held-out images."""
    image = np.asarray(calibration_scores["image"][aggregation], dtype=np.float64)
    peaks = np.asarray(calibration_scores["map_peak"], dtype=np.float64)
    if value is None:
        threshold = threshold_at(image, false_alarm_rate)
        how = f"conformal: the ceil((n + 1)(1 - {false_alarm_rate:g}))-th smallest held-out normal image score"
    else:
        threshold = float(value)
        false_alarm_rate = max(float(is_defect(image, threshold).mean()), 1.0 / (len(image) + 1))
        how = f"set by hand to {threshold:g}; {false_alarm_rate:.4g} is the share of held-out normal scores above it"
    return {"threshold": threshold, "pixel_threshold": threshold_at(peaks, false_alarm_rate),
            "threshold_policy": {"method": how, "false_alarm_rate": false_alarm_rate, "n_holdout": int(len(image)),
                                 "pixel_threshold": "the held-out anomaly maps' peak at the same rate",
                                 "promise": promise(image, threshold, false_alarm_rate)}}
