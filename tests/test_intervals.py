"""Intervals and the threshold's promise, against values known in closed form or from tables."""

import math

import numpy as np
import pytest

from patchline.core.calibration import moved_threshold, promise, threshold_at
from patchline.core.intervals import (binomial_range, bootstrap_auroc, clopper_pearson, distinguishable, images_needed,
                                      operating_point, paired_bootstrap_difference, threshold_for_rate,
                                      upper_bound, wilson)


@pytest.mark.parametrize("k, n, low, high", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (81, 263, 0.2553, 0.3662)])
def test_wilson_matches_published_values(k, n, low, high):
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize("k, n, low, high", [(0, 10, 0.0, 0.3085), (5, 10, 0.1871, 0.8129), (10, 10, 0.6915, 1.0)])
def test_clopper_pearson_matches_published_values(k, n, low, high):
    assert clopper_pearson(k, n) == pytest.approx((low, high), abs=1e-4)


def test_upper_bound_with_no_event_is_the_closed_form_and_grows_with_events():
    for n in (10, 299, 1000):
        assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-6)
    assert upper_bound(0, 299) < 0.01 < upper_bound(0, 298)  # the "rule of three" region
    assert upper_bound(3, 441) == pytest.approx(0.0175, abs=5e-4) and upper_bound(4, 441) > upper_bound(3, 441)
    assert images_needed(0.01) == 99 and images_needed(0.05) == 19


def test_conformal_threshold_keeps_its_average_and_its_promise_on_a_known_distribution():
    rng = np.random.default_rng(0)
    realised, kept = [], 0
    for _ in range(400):
        calib = rng.exponential(size=199)
        t = threshold_at(calib, 0.05)
        rate = math.exp(-t)  # P(new normal > t) for the unit exponential, exactly
        realised.append(rate)
        kept += rate <= promise(calib, t, 0.05)["false_alarm_rate_at_most"]
    assert np.mean(realised) == pytest.approx(0.05, abs=0.004)  # conformal: (n + 1 - k) / (n + 1) = 10 / 200
    assert kept / 400 >= 0.93  # the 95 % bound holds in about 95 % of calibration sets


def test_too_few_images_for_the_target_get_a_warning_that_says_how_many():
    scores = np.arange(40, dtype=float)
    t = threshold_at(scores, 0.01)
    assert t == 39.0
    out = promise(scores, t, 0.01)
    assert "at least 99 good images" in out["warning"] and out["n_above"] == 0
    assert "warning" not in promise(np.arange(200.0), threshold_at(np.arange(200.0), 0.01), 0.01)


def test_moving_the_threshold_uses_the_kept_scores():
    scores = {"image": {"max": list(np.arange(1.0, 101.0))}, "map_peak": list(np.arange(101.0, 201.0))}
    out = moved_threshold(scores, "max", false_alarm_rate=0.1)
    assert out["threshold"] == 91.0 and out["pixel_threshold"] == 191.0  # ceil(101 * 0.9) = 91st of 100
    by_value = moved_threshold(scores, "max", value=95.5)
    assert by_value["threshold"] == 95.5 and by_value["threshold_policy"]["false_alarm_rate"] == pytest.approx(0.05)


def test_operating_point_counts_verdicts_as_the_judge_does():
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    scores = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 6.0, 0.5])
    op = operating_point(labels, scores, 3.0)  # strictly above is a defect
    assert (op.detected, op.n_defect, op.false_alarms, op.n_good) == (2, 3, 1, 4)
    assert op.detection_interval == pytest.approx(wilson(2, 3))
    assert threshold_for_rate(scores[labels == 0], 0.25) == 3.0


def test_bootstrap_intervals_cover_the_estimate_and_pairing_cancels_shared_noise():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(150), np.ones(150)].astype(bool)
    a = rng.normal(size=300) + 1.5 * labels
    point, low, high = bootstrap_auroc(labels, a, n_boot=300)
    assert low < point < high and high - low < 0.15
    assert bootstrap_auroc(labels, labels.astype(float), n_boot=50) == (1.0, 1.0, 1.0)
    b = a + rng.normal(scale=0.05, size=300)  # nearly the same scores: the paired interval is tight around 0
    diff, lo, hi = paired_bootstrap_difference(labels, a, b, n_boot=300)
    assert lo <= diff <= hi and hi - lo < 0.02 and not distinguishable(lo, hi)
    worse = paired_bootstrap_difference(labels, a, rng.normal(size=300) + 0.5 * labels, n_boot=300)
    assert distinguishable(worse[1], worse[2]) and worse[0] > 0


def test_binomial_range_holds_the_counts_a_true_rate_gives():
    assert binomial_range(147, 0.01) == (0, 4) and binomial_range(230, 0.01) == (0, 6)
    low, high = binomial_range(1000, 0.1)
    assert low < 100 < high and high - low < 45
