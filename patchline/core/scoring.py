"""Patch scores from the bank and their aggregation into one image score."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from patchline.core.anomaly_map import anomaly_map, defect_region

TOPK_SIZES = (5, 8, 10, 15, 20, 40, 60, 100)
AGGREGATIONS = ("max", "mean", "var") + tuple(f"topk{n}" for n in TOPK_SIZES)
_TOPK = re.compile(r"^topk([1-9][0-9]*)$")


def topk_size(name: str | None) -> int | None:
    """N of a `topk<N>` aggregation name; None for any other name."""
    match = _TOPK.match(name or "")
    return int(match.group(1)) if match else None


def check_aggregation(name: str) -> str:
    """Return `name` if it is a known aggregation (max, mean, var, topk<N>), else raise ValueError."""
    if name in ("max", "mean", "var") or topk_size(name):
        return name
    raise ValueError(f"unknown aggregation '{name}'; use max, mean, var or topk<N> (e.g. topk10)")


def patch_scores_from_distances(squared: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """faiss squared L2 distances (N*H*W, 1) → Euclidean patch scores (N, H, W) float32."""
    scores = np.sqrt(np.maximum(squared[:, 0], 0.0, dtype=np.float32))
    return scores.reshape(-1, grid[0], grid[1])


def aggregate(patch_scores: np.ndarray, name: str) -> np.ndarray:
    """Image scores from patch scores.

    patch_scores: (N, H, W) float32. name: max | mean | var (mean squared deviation) | topk<N>
    (mean of the N largest, N capped at the patch count). Returns (N,) float32.
    """
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


def aggregate_all(patch_scores: np.ndarray, names=AGGREGATIONS) -> dict[str, np.ndarray]:
    """Every aggregation at once: name → (N,) float32 image scores."""
    return {name: aggregate(patch_scores, name) for name in names}


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
          imagesize: int, crop_origin: tuple[float, float, float, float]) -> Verdict:
    """Judge one image from its (h, w) float32 patch scores against a bank's calibrated rule.

    crop_origin: (x0, y0, sx, sy) from `preprocess.crop_box`, so the region is in frame pixels.
    The anomaly map is computed only for defects (it serves the alarm's region); region is
    {"bbox": [x0, y0, x1, y1], "area": frame pixels} or None for a good image.
    """
    score = float(aggregate(patch_scores[None], aggregation)[0])
    defect = bool(is_defect(score, threshold))
    if not defect:
        return Verdict(score, defect, None)
    amap = anomaly_map(patch_scores, imagesize)
    level = pixel_threshold if pixel_threshold is not None else float(amap.max())
    found = defect_region(amap, level, crop_origin)
    return Verdict(score, defect, {"bbox": found["bbox"], "area": found["area"]}, amap, level)
