"""AUROC and PRO against brute-force definitions on small data."""

import numpy as np
import pytest

from patchline.core.metrics import auroc, pro_score

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def brute_auroc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_equals_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, 60)
        scores = rng.integers(0, 10, 60).astype(float)
        assert auroc(labels, scores) == pytest.approx(brute_auroc(labels, scores))
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert np.isnan(auroc([1, 1], [0.1, 0.2]))


def brute_pro(masks, maps, limit=0.3, steps=4000):
    import cv2

    regions = []
    for i, m in enumerate(masks):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [(i, lab == r) for r in range(1, n)]
    thresholds = np.linspace(maps.max(), maps.min() - 1e-9, steps)
    fprs, pros = [0.0], [0.0]
    for t in thresholds:
        pred = maps >= t
        fprs.append((pred & ~masks).sum() / (~masks).sum())
        pros.append(np.mean([(pred[i] & r).sum() / r.sum() for i, r in regions]))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= limit
    x, y = fprs[keep], pros[keep]
    x, y = np.append(x, limit), np.append(y, np.interp(limit, fprs, pros))
    return np.trapz(y, x) / limit


def test_pro_is_one_for_a_perfect_map_and_matches_a_threshold_sweep():
    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[0, 4:10, 4:10] = True
    masks[0, 20:22, 20:30] = True
    masks[1, 10:20, 5:8] = True
    assert pro_score(masks, masks.astype(float)) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    maps = masks * 0.6 + rng.random(masks.shape)
    assert pro_score(masks, maps) == pytest.approx(brute_pro(masks, maps), abs=2e-3)
    assert np.isnan(pro_score(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4))))
