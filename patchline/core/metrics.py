"""Evaluation metrics: image / pixel AUROC and PRO (area under the per-region-overlap curve), and
the text a report table shows for a metric."""

from __future__ import annotations

import cv2
import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve. labels: (N,) bool/int (1 = defect); scores: (N,) float.

    Mann–Whitney statistic with average ranks for ties; NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average rank of each tie group (1-based).
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points: labels (N,) bool/int (1 = defect), scores (N,) float → (fpr, tpr), each (M,) float64.

    One point per distinct score (ties move both rates at once), from (0, 0) to (1, 1); the
    trapezoid area under it equals `auroc`.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each tie group
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    tpr = np.r_[0.0, tp / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fp / max(int((~y).sum()), 1)]
    return fpr, tpr


def pro_score(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to `fpr_limit` (MVTec AD's AUPRO).

    masks: (N, H, W) bool ground truth; maps: (N, H, W) float anomaly maps.
    Every connected defect region weighs the same; the false-positive rate counts all defect-free
    pixels. Exact: every distinct score is a threshold. NaN without any defect pixel.
    """
    masks = np.asarray(masks).astype(bool)
    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    regions = []
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        count, labelled = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        for r in range(1, count):
            region = labelled == r
            regions.append((i, region, region.sum()))
        n_regions += count - 1
    if n_regions == 0:
        return float("nan")
    for i, region, size in regions:
        weights[i][region] = 1.0 / (size * n_regions)
    flat_scores = np.asarray(maps, dtype=np.float64).ravel()
    order = np.argsort(-flat_scores, kind="mergesort")
    scores = flat_scores[order]
    overlap = np.cumsum(weights.ravel()[order])
    negatives = (~masks).ravel()[order]
    fpr = np.cumsum(negatives) / max(int(negatives.sum()), 1)
    # Only the last index of each group of tied scores is a reachable threshold.
    last = np.concatenate((np.flatnonzero(np.diff(scores)), [scores.size - 1]))
    fpr = np.concatenate(([0.0], fpr[last]))
    overlap = np.concatenate(([0.0], overlap[last]))
    keep = fpr <= fpr_limit
    x, y = fpr[keep], overlap[keep]
    if x[-1] < fpr_limit:
        nxt = int(np.searchsorted(fpr, fpr_limit))
        if nxt < fpr.size:
            t = (fpr_limit - fpr[nxt - 1]) / max(fpr[nxt] - fpr[nxt - 1], 1e-300)
            x = np.append(x, fpr_limit)
            y = np.append(y, overlap[nxt - 1] + t * (overlap[nxt] - overlap[nxt - 1]))
    return float(np.trapz(y, x) / fpr_limit)


def metric_text(value) -> str:
    """A table cell for a metric: a float with 4 decimals ("n/a" for NaN), anything else as str."""
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return str(value)
