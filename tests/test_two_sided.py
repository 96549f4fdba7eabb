"""The two-sided statistic: an image whose patches are unusually close to the bank as a whole (a part
whose label or print is missing, matching plain bank patches everywhere) is flagged, with the whole
view as its region; its reference travels in bank.json and a bank without it is refused."""

import json

import numpy as np
import pytest

from patchline.bank.store import load_bank, write_bank
from patchline.core.calibration import calibrate, threshold_at
from patchline.core.scoring import AGGREGATIONS, TWO_SIDED, aggregate, aggregate_all, judge, two_sided_reference
from patchline.errors import BankError

pytestmark = pytest.mark.runtime  # runs in the runtime-only install too (scripts/runtime_check.sh)


def labelled_parts(n: int, rng: np.random.Generator, label: bool = True) -> np.ndarray:
    """(n, 8, 8) patch scores: plain patches near 5, and where a part has its label a 2 × 2 block near
    15 (patterns the bank never holds exactly) at a random place."""
    scores = rng.normal(5.0, 0.3, size=(n, 8, 8)).astype(np.float32)
    if label:
        for s in scores:
            y, x = rng.integers(0, 7, size=2)
            s[y:y + 2, x:x + 2] = rng.normal(15.0, 1.0, size=(2, 2))
    return scores


def test_a_part_without_its_label_is_low_on_every_one_sided_aggregation_and_high_on_the_two_sided_one():
    rng = np.random.default_rng(0)
    good, blank = labelled_parts(40, rng), labelled_parts(10, rng, label=False)
    reference = two_sided_reference(good)
    one_sided_good, one_sided_blank = aggregate_all(good), aggregate_all(blank)
    for name in AGGREGATIONS:
        assert one_sided_blank[name].max() < np.median(one_sided_good[name]), name
    assert aggregate(blank, TWO_SIDED, reference).min() > aggregate(good, TWO_SIDED, reference).max()


def test_the_verdict_of_a_part_too_plain_as_a_whole_points_at_the_whole_view():
    rng = np.random.default_rng(1)
    good = labelled_parts(40, rng)
    reference = two_sided_reference(good)
    threshold = threshold_at(aggregate(good, TWO_SIDED, reference), 0.05)
    crop = (16.0, 8.0, 1.0, 1.0)  # a 64-px crop at (16, 8) of the frame
    verdict = judge(labelled_parts(1, rng, label=False)[0], TWO_SIDED, threshold, None, 64, crop, reference)
    assert verdict.defect and verdict.score > threshold
    assert verdict.region["bbox"] == [16, 8, 80, 72] and verdict.region["area"] == 64 * 64
    high = labelled_parts(1, rng)[0]
    high[0, 0] = 60.0  # one patch far from the bank: the high side decides, the region is around it
    verdict = judge(high, TWO_SIDED, threshold, None, 64, crop, reference)
    assert verdict.defect and verdict.region["bbox"][2] - verdict.region["bbox"][0] < 64


def test_the_two_sided_statistic_without_its_reference_is_a_sentence():
    with pytest.raises(ValueError, match="needs its reference"):
        aggregate(np.ones((1, 4, 4), np.float32), TWO_SIDED)


def test_calibration_keeps_the_reference_and_thresholds_on_the_two_sided_scale():
    rng = np.random.default_rng(2)
    good, defects = labelled_parts(30, rng), labelled_parts(30, rng) + 3.0
    fields = calibrate(good, defects, TWO_SIDED, 0.05, 64)
    reference = fields["score_reference"]
    assert fields["aggregation"] == TWO_SIDED and reference == two_sided_reference(good)
    assert fields["threshold"] == threshold_at(aggregate(good, TWO_SIDED, reference), 0.05)
    assert TWO_SIDED in fields["aggregation_choice"]["synthetic_auroc"]
    assert len(fields["calibration_scores"]["image"][TWO_SIDED]) == 30
    assert calibrate(good, defects, "topk5", 0.05, 64)["score_reference"] is None


META = {"backbone": "efficientnet_lite0", "layers": ["layer2"], "resize": 64, "imagesize": 64, "patchsize": 3,
        "grid": [4, 4], "aggregation": TWO_SIDED, "threshold": 3.0}


@pytest.mark.parametrize("reference,message", [
    (None, "lacks the field 'score_reference'"),
    ({"high": [1.0, 0.5]}, "'high' and 'low'"),
    ({"high": [1.0, 0.5], "low": [-1.0, 0.0]}, "'low' must be \\[center, scale > 0\\]"),
    ({"high": [1.0, "x"], "low": [-1.0, 0.2]}, "'high' must be"),
])
def test_a_two_sided_bank_without_a_sound_reference_is_refused_naming_the_field(tmp_path, reference, message):
    patches = np.random.default_rng(3).normal(size=(20, 8)).astype(np.float32)
    version = write_bank(tmp_path, "labels", patches, {**META, "score_reference": {"high": [1.0, 0.5], "low": [-1.0, 0.2]}})
    meta = json.loads((version / "bank.json").read_text())  # a bank.json edited or damaged on disk
    if reference is None:
        del meta["score_reference"]
    else:
        meta["score_reference"] = reference
    (version / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match=message):
        load_bank(tmp_path, "labels")
    with pytest.raises(BankError, match=message):  # and a writer is refused before anything is on disk
        write_bank(tmp_path / "other", "labels", patches, {k: v for k, v in meta.items() if k in {*META, "score_reference"}})


def test_a_two_sided_bank_loads_with_its_reference(tmp_path):
    patches = np.random.default_rng(4).normal(size=(20, 8)).astype(np.float32)
    reference = {"high": [16.4, 1.3], "low": [-5.8, 0.2]}
    version = write_bank(tmp_path, "labels", patches, {**META, "score_reference": reference})
    meta = load_bank(tmp_path, "labels").meta
    assert dict(meta.score_reference) == reference
    assert json.loads((version / "bank.json").read_text())["score_reference"] == reference
