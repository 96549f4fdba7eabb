"""How sure tune's proxy is of its choice (training/tune_confidence): the share of bootstrap draws of
the held-out good images in which each setting comes first, and the sentence when no setting
settles it. Trials are built from image scores with known separations (no model is needed to
check the resampling)."""

from __future__ import annotations

import numpy as np

from patchline.core.scoring import AGGREGATIONS
from patchline.training.tune_confidence import RESAMPLES, best_shares, uncertain_choice
from patchline.training.tune_trial import Candidate, Trial, proxy_score

FAMILIES = np.array(["crack", "spot"] * 40)


def trial(size: int, normal: np.ndarray, defect: np.ndarray, cpu_ms: float = 10.0) -> Trial:
    """A rung-2 trial whose every aggregation scores the given (n,) / (m,) image scores."""
    scores = {"normal": {a: normal for a in AGGREGATIONS}, "defect": {a: defect for a in AGGREGATIONS},
              "families": FAMILIES}
    aggregation, score, families = proxy_score(scores["normal"], scores["defect"], FAMILIES)
    return Trial(Candidate("efficientnet_lite0", size, size, ("layer2",), 0.1), score, aggregation, 1000, "exact",
                 {"search": cpu_ms}, families, 2, 30, False, scores)


def test_a_setting_that_separates_far_better_comes_first_in_every_draw():
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, 40)
    clear = trial(224, normal, rng.normal(4, 1, 80))
    faint = trial(320, normal + rng.normal(0, 0.1, 40), rng.normal(0.3, 1, 80))
    shares = best_shares([faint, clear])
    assert shares == [0.0, 1.0]
    assert uncertain_choice([faint, clear], {id(faint): shares[0], id(clear): shares[1]}, clear) is None


def test_two_settings_the_images_cannot_tell_apart_share_the_draws_and_tune_says_so():
    rng = np.random.default_rng(1)
    normal, defect = rng.normal(0, 1, 40), rng.normal(1, 1, 80)
    # the same separation up to noise of the size a different bank gives
    a = trial(224, normal + rng.normal(0, 0.3, 40), defect + rng.normal(0, 0.3, 80))
    b = trial(320, normal + rng.normal(0, 0.3, 40), defect + rng.normal(0, 0.3, 80))
    far = trial(160, normal, rng.normal(-1, 1, 80))
    shares = best_shares([a, b, far])
    assert abs(sum(shares) - 1.0) < 1e-9 and shares[2] == 0.0
    assert 0.15 < shares[0] < 0.85 and 0.15 < shares[1] < 0.85, shares
    # whichever of the two a run chose, the one first in fewer draws gets the sentence, naming the other
    low = int(np.argmin(shares[:2]))
    chosen, other = (a, b) if low == 0 else (b, a)
    assert shares[low] < 0.5
    sentence = uncertain_choice([a, b, far], dict(zip(map(id, [a, b, far]), shares)), chosen)
    assert sentence is not None and "\n" not in sentence
    assert f"of {RESAMPLES} draws" in sentence and other.candidate.label() in sentence
    assert far.candidate.label() not in sentence


def test_the_draws_are_the_same_rows_for_every_setting_and_seeded():
    rng = np.random.default_rng(2)
    normal, defect = rng.normal(0, 1, 40), rng.normal(1, 1, 80)
    # identical scores: every draw is a tie, which goes to the cheaper setting, as `choose` breaks it
    costly, cheap = trial(320, normal, defect, cpu_ms=30.0), trial(224, normal, defect, cpu_ms=10.0)
    assert best_shares([costly, cheap]) == [0.0, 1.0]
    assert best_shares([costly, cheap], seed=5) == [0.0, 1.0]
    assert best_shares([]) == []
