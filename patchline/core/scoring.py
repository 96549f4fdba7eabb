"""Patch scores from the bank and their aggregation into one image score.

One-sided aggregations (AGGREGATIONS) flag an image whose patch scores run high. The two-sided
statistic (TWO_SIDED, opt-in) also flags one whose patches are unusually *close* to the bank: a part
whose texture or print is missing can match plain bank patches everywhere, so nothing runs high but
its mean patch score falls below every good part's. It is max(z of topk5, z of −mean), each z against
the mean and spread of good images' held-out scores (`two_sided_reference`, kept in bank.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from patchline.core.anomaly_map import anomaly_map, defect_region

TOPK_SIZES = (5, 8, 10, 15, 20, 40, 60, 100)
AGGREGATIONS = ("max", "mean", "var") + tuple(f"topk{n}" for n in TOPK_SIZES)
_TOPK = re.compile(r"^topk([1-9][0-9]*)$")
TWO_SIDED = "two-sided"
TWO_SIDED_PARTS = {"high": "topk5", "low": "mean"}  # side → the aggregation it is the z of (low: of −it)


def topk_size(name: str | None) -> int | None:
    """N of a `topk<N>` aggregation name; None for any other name."""
    match = _TOPK.match(name or "")
    return int(match.group(1)) if match else None


def check_aggregation(name: str) -> str:
    """Return `name` if it is a known aggregation (max, mean, var, topk<N>, two-sided), else raise ValueError."""
    if name in ("max", "mean", "var", TWO_SIDED) or topk_size(name):
        return name
    raise ValueError(f"unknown aggregation '{name}'; use max, mean, var, topk<N> (e.g. topk10) or {TWO_SIDED}")


def two_sided_reference(normal_patch_scores: np.ndarray) -> dict[str, list[float]]:
    """The two-sided statistic's reference from good images' held-out patch scores (n, h, w) float32:
    {"high": [mean, std] of their topk5 scores, "low": [mean, std] of their −mean scores} (std floored
    so that a constant score cannot divide by zero)."""
    out = {}
    for side, name in TWO_SIDED_PARTS.items():
        values = aggregate(normal_patch_scores, name).astype(np.float64) * (1 if side == "high" else -1)
        out[side] = [float(values.mean()), max(float(values.std()), 1e-6 * max(abs(float(values.mean())), 1.0))]
    return out


def check_two_sided_reference(reference) -> dict[str, list[float]]:
    """`reference` if it is {"high": [center, scale], "low": [center, scale]} with finite numbers and
    scales > 0, else ValueError naming what is wrong."""
    if not isinstance(reference, dict) or set(reference) != set(TWO_SIDED_PARTS):
        raise ValueError(f"the {TWO_SIDED} reference must be an object with 'high' and 'low', got {reference!r}")
    for side, pair in reference.items():
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) for v in pair)
                or pair[1] <= 0):
            raise ValueError(f"the {TWO_SIDED} reference's '{side}' must be [center, scale > 0], got {pair!r}")
    return {side: [float(v) for v in pair] for side, pair in reference.items()}


def patch_scores_from_distances(squared: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """faiss squared L2 distances (N*H*W, 1) → Euclidean patch scores (N, H, W) float32."""
    scores = np.sqrt(np.maximum(squared[:, 0], 0.0, dtype=np.float32))
    return scores.reshape(-1, grid[0], grid[1])


def aggregate(patch_scores: np.ndarray, name: str, reference: dict | None = None) -> np.ndarray:
    """Image scores from patch scores.

    patch_scores: (N, H, W) float32. name: max | mean | var (mean squared deviation) | topk<N>
    (mean of the N largest, N capped at the patch count) | two-sided (needs `reference`, from
    two_sided_reference). Returns (N,) float32.
    """
    if name == TWO_SIDED:
        return np.maximum(*_two_sided_z(patch_scores, reference)).astype(np.float32)
    flat = patch_scores.reshape(patch_scores.shape[0], -1)
    if name == "max":
        return flat.max(axis=1)
    if name == "mean":
        return flat.mean(axis=1, dtype=np.float64).astype(np.float32)
    if name == "var":
        return flat.var(axis=1, dtype=np.float64).astype(np.float32)
    size = topk_size(name)
    if size is None:
        raise ValueError(f"unknown aggregation '{name}'")
    k = min(size, flat.shape[1])
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, flat.shape[1] - k :]
    return top.mean(axis=1, dtype=np.float64).astype(np.float32)


def _two_sided_z(patch_scores: np.ndarray, reference: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """((N,) z of topk5, (N,) z of −mean) float64 of (N, H, W) patch scores against `reference`."""
    if reference is None:
        raise ValueError(f"the {TWO_SIDED} statistic needs its reference from good images")
    high, low = reference["high"], reference["low"]
    z_high = (aggregate(patch_scores, TWO_SIDED_PARTS["high"]).astype(np.float64) - high[0]) / high[1]
    z_low = (-aggregate(patch_scores, TWO_SIDED_PARTS["low"]).astype(np.float64) - low[0]) / low[1]
    return z_high, z_low


def low_side_decides(patch_scores: np.ndarray, reference: dict) -> np.ndarray:
    """(N,) bool: where the two-sided statistic of (N, H, W) patch scores comes from its low side (the
    image is unusually close to the bank as a whole, not high anywhere)."""
    z_high, z_low = _two_sided_z(patch_scores, reference)
    return z_low > z_high


def aggregate_all(patch_scores: np.ndarray, names=AGGREGATIONS) -> dict[str, np.ndarray]:
    """Every aggregation at once: name → (N,) float32 image scores."""
    return {name: aggregate(patch_scores, name) for name in names}


def normal_and_defect_scores(normal: np.ndarray, defect: np.ndarray,
                              two_sided: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict | None]:
    """Image scores of good images and of defective ones from their (n, h, w) and (m, h, w) patch scores:
    ({aggregation: (n,)}, {aggregation: (m,)}, reference): every one-sided aggregation, and with
    `two_sided` also the two-sided statistic (last), its reference taken from the good images' scores
    (None without it)."""
    normal_scores, defect_scores = aggregate_all(normal), aggregate_all(defect)
    reference = two_sided_reference(normal) if two_sided else None
    if reference is not None:
        normal_scores[TWO_SIDED] = aggregate(normal, TWO_SIDED, reference)
        defect_scores[TWO_SIDED] = aggregate(defect, TWO_SIDED, reference)
    return normal_scores, defect_scores, reference


def is_defect(image_scores, threshold: float) -> np.ndarray:
    """The one score-vs-threshold rule: (N,) image scores → (N,) bool, True where score > threshold."""
    return np.asarray(image_scores) > threshold


@dataclass(frozen=True)
class Verdict:
    """One frame judged: its image score, whether it is a defect, and the defect region (or None).

    amap / level: for a defect, the (S, S) float32 anomaly map the region was outlined on and the
    level it was outlined at (an alarm snapshot draws the same map); None for a good image."""

    score: float
    defect: bool
    region: dict | None
    amap: np.ndarray | None = field(default=None, compare=False, repr=False)
    level: float | None = None


def judge(patch_scores: np.ndarray, aggregation: str, threshold: float, pixel_threshold: float | None,
          imagesize: int, crop_origin: tuple[float, float, float, float], reference: dict | None = None) -> Verdict:
    """Judge one image from its (h, w) float32 patch scores against a bank's calibrated rule.

    crop_origin: (x0, y0, sx, sy) from `preprocess.crop_box`, so the region is in frame pixels.
    reference: the bank's two-sided reference when its aggregation is two-sided.
    The anomaly map is computed only for defects (it serves the alarm's region); region is
    {"bbox": [x0, y0, x1, y1], "area": frame pixels} or None for a good image.
    """
    score = float(aggregate(patch_scores[None], aggregation, reference)[0])
    defect = bool(is_defect(score, threshold))
    if not defect:
        return Verdict(score, defect, None)
    amap = anomaly_map(patch_scores, imagesize)
    level = pixel_threshold if pixel_threshold is not None else float(amap.max())
    if aggregation == TWO_SIDED and low_side_decides(patch_scores[None], reference)[0]:
        level = float(amap.min())  # too plain as a whole: the region is the whole view, not a peak
    found = defect_region(amap, level, crop_origin)
    return Verdict(score, defect, {"bbox": found["bbox"], "area": found["area"]}, amap, level)
