"""Patch scores from the bank and their aggregation into one image score."""

from __future__ import annotations

import re

import numpy as np

TOPK_SIZES = (5, 8, 10, 15, 20, 40, 60, 100)
AGGREGATIONS = ("max", "mean", "var") + tuple(f"topk{n}" for n in TOPK_SIZES)
_TOPK = re.compile(r"^topk([1-9][0-9]*)$")


def check_aggregation(name: str) -> str:
    """Return `name` if it is a known aggregation (max, mean, var, topk<N>), else raise ValueError."""
    if name in ("max", "mean", "var") or _TOPK.match(name):
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
    match = _TOPK.match(name)
    if not match:
        raise ValueError(f"unknown aggregation '{name}'")
    k = min(int(match.group(1)), flat.shape[1])
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, flat.shape[1] - k :]
    return top.mean(axis=1, dtype=np.float64).astype(np.float32)


def aggregate_all(patch_scores: np.ndarray, names=AGGREGATIONS) -> dict[str, np.ndarray]:
    """Every aggregation at once: name → (N,) float32 image scores."""
    return {name: aggregate(patch_scores, name) for name in names}
