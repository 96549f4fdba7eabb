"""How `patchline tune` ranks settings compared together: each synthetic family's AUROC as a z value
across them, so that one family's wide spread does not decide alone and a family every setting finds
about equally well adds no noise; known-bad images weigh in by their number."""

import numpy as np

from patchline.training.tune_trial import REAL, family_rank_scores


def test_one_family_with_a_wide_spread_does_not_outvote_the_others():
    # B wins on spot by a mile (only large images see 6-px spots); A wins the two other families by less
    a = {"crack": 1.0, "dark_region": 0.80, "texture_change": 0.78, "spot": 0.60}
    b = {"crack": 1.0, "dark_region": 0.76, "texture_change": 0.74, "spot": 0.98}
    pooled = {name: np.mean(list(p.values())) for name, p in (("a", a), ("b", b))}
    assert pooled["b"] > pooled["a"], "the pooled AUROC follows the spot"
    score = family_rank_scores([a, b])
    assert score[0] > score[1]


def test_a_family_every_setting_finds_alike_adds_no_noise():
    # crack: 1.0 against 0.999 is nothing; the spread floor keeps it from counting as a full z
    a = {"crack": 0.999, "dark_region": 0.90}
    b = {"crack": 1.000, "dark_region": 0.88}
    assert family_rank_scores([a, b])[0] > family_rank_scores([a, b])[1]


def test_known_bad_images_weigh_n_over_n_plus_5():
    a = {"dark_region": 0.90, REAL: 0.70}
    b = {"dark_region": 0.80, REAL: 0.90}
    assert family_rank_scores([a, b], n_real=1)[0] > family_rank_scores([a, b], n_real=1)[1]   # weight 1/6
    assert family_rank_scores([a, b], n_real=20)[1] > family_rank_scores([a, b], n_real=20)[0]  # weight 20/25


def test_one_setting_or_none_is_ranked_without_dividing_by_zero():
    assert family_rank_scores([]).shape == (0,)
    assert family_rank_scores([{"crack": 0.9}]).tolist() == [0.0]
