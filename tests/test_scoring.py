"""Aggregation of patch scores into image scores."""

import numpy as np
import pytest

from patchline.core.scoring import (
    AGGREGATIONS,
    aggregate,
    aggregate_all,
    check_aggregation,
    patch_scores_from_distances,
)

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def test_every_reference_project_aggregation_is_known():
    assert AGGREGATIONS == ("max", "mean", "var", "topk5", "topk8", "topk10", "topk15", "topk20",
                            "topk40", "topk60", "topk100")


def test_aggregations_on_known_values():
    scores = np.arange(1, 101, dtype=np.float32).reshape(1, 10, 10)
    assert aggregate(scores, "max")[0] == 100
    assert aggregate(scores, "mean")[0] == pytest.approx(50.5)
    assert aggregate(scores, "var")[0] == pytest.approx(np.var(np.arange(1, 101)))
    assert aggregate(scores, "topk5")[0] == pytest.approx(98.0)
    assert aggregate(scores, "topk100")[0] == pytest.approx(50.5)
    assert aggregate(scores, "topk1000")[0] == pytest.approx(50.5)  # capped at the patch count


def test_aggregate_all_gives_one_score_per_image():
    scores = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    result = aggregate_all(scores)
    assert set(result) == set(AGGREGATIONS)
    assert all(v.shape == (3,) for v in result.values())


def test_unknown_aggregation_is_refused():
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        check_aggregation("median")
    assert check_aggregation("topk7") == "topk7"


def test_patch_scores_are_euclidean_distances_on_the_grid():
    squared = np.array([[4.0], [9.0], [0.0], [-1e-7]], dtype=np.float32)
    out = patch_scores_from_distances(squared, (2, 2))
    np.testing.assert_allclose(out, [[[2, 3], [0, 0]]])


def test_judge_flags_only_scores_above_the_threshold_and_points_at_the_hot_patch():
    import numpy as np

    from patchline.core.scoring import is_defect, judge

    patch_scores = np.zeros((8, 8), np.float32)
    patch_scores[2, 5] = 3.0
    defect = judge(patch_scores, "max", 2.0, None, 64, (0.0, 0.0, 1.0, 1.0))
    assert defect.defect and defect.score == 3.0
    x0, y0, x1, y1 = defect.region["bbox"]
    assert x0 <= 5 * 8 + 4 <= x1 and y0 <= 2 * 8 + 4 <= y1
    at_threshold = judge(patch_scores, "max", 3.0, None, 64, (0.0, 0.0, 1.0, 1.0))
    assert not at_threshold.defect and at_threshold.region is None
    assert is_defect(np.array([1.0, 3.0, 3.5]), 3.0).tolist() == [False, False, True]
