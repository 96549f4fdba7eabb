"""Threshold and aggregation come from held-out normal images and synthetic defects only."""

import numpy as np
import pytest

from patchline.core.calibration import calibrate, holdout_split, synthetic_defects, threshold_at
from patchline.core.synthetic import KINDS, make_defect
from patchline.errors import PatchlineError


def test_holdout_split_is_deterministic_disjoint_and_keeps_enough_for_the_bank():
    fit, hold = holdout_split(20, 0.2, seed=0)
    assert len(hold) == 4 and len(fit) == 16 and not set(fit) & set(hold)
    again = holdout_split(20, 0.2, seed=0)
    assert (again[0] == fit).all() and (again[1] == hold).all()
    assert len(holdout_split(5, 0.9, 0)[0]) == 4
    with pytest.raises(PatchlineError, match="at least 5 good images"):
        holdout_split(3, 0.2, 0)


def test_threshold_lets_at_most_the_target_rate_of_normals_through():
    scores = np.arange(1, 201, dtype=float)
    t = threshold_at(scores, 0.01)
    assert (scores > t).mean() <= 0.01 and t in scores


def test_the_aggregation_that_separates_synthetic_defects_is_chosen():
    rng = np.random.default_rng(0)
    normal = rng.normal(1.0, 0.05, size=(10, 8, 8)).astype(np.float32)
    defect = rng.normal(1.0, 0.05, size=(10, 8, 8)).astype(np.float32)
    defect[:, 2, 3] += 3.0  # one hot patch per defect image: max separates, mean barely does
    out = calibrate(normal, defect, "auto", 0.01, imagesize=64)
    assert out["aggregation"] == "max"
    assert out["aggregation_choice"]["synthetic_auroc"]["max"] == 1.0
    assert out["threshold"] == pytest.approx(normal.reshape(10, -1).max(axis=1).max())
    fixed = calibrate(normal, defect, "mean", 0.01, imagesize=64)
    assert fixed["aggregation"] == "mean" and "fixed" in fixed["aggregation_choice"]["method"]


def test_synthetic_defects_change_the_image_exactly_inside_their_mask():
    rng = np.random.default_rng(1)
    image = np.full((128, 128, 3), 120, dtype=np.uint8)
    image[::2] = 140
    for kind in KINDS:
        defect, mask = make_defect(image, kind, rng)
        assert defect.shape == image.shape and mask.any()
        assert (defect[~mask] == image[~mask]).all()
    assert len(synthetic_defects([image] * 4, seed=0)) == 4
