"""`patchline tune`: a constructed case makes one setting clearly best, and tune picks it from good
images only; its config trains the line; an impossible budget is refused in one sentence.

Real MindSpore (EfficientNet-Lite0, real weights) for features, real exported ONNX models timed
with ONNX Runtime, real faiss."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from patchline.core.synthetic import SUBTLE_KINDS, make_defect
from sample_data import make_texture_dataset

GRID = ["--grid-backbones", "efficientnet_lite0", "--grid-layers", "layer2", "--grid-coreset", "0.1", "--quiet"]


def patchline(*args, cwd):
    return subprocess.run([sys.executable, "-m", "patchline.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def good_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    make_texture_dataset(root / "data", ("brick",), n_train=24, n_test_good=1, n_test_defect=1, size=192, seed=3)
    return root, root / "data" / "brick" / "train" / "good"


def test_the_subtle_synthetic_defects_are_small_and_faint():
    image = np.full((192, 192, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    for kind in SUBTLE_KINDS:
        out, mask = make_defect(image, kind, rng)
        assert out.shape == image.shape and out.dtype == np.uint8 and mask.any(), kind
        assert mask.mean() < 0.1, f"{kind} covers {mask.mean():.0%} of the image"
        assert np.abs(out.astype(int) - image).max() <= 128, kind


def test_tune_picks_the_image_size_at_which_small_defects_are_visible_and_train_reads_its_config(good_images):
    # 192-px brick texture: at 64 px a spot or a one-pixel crack shrinks below one stride-8 patch,
    # at 192 px it does not — the proxy must rank 192 clearly first.
    root, images = good_images
    # patch sizes 3 and 5 are tried at each size (the embedding's neighbourhood), recorded, and the
    # chosen one is what train builds with
    done = patchline("tune", "--line", "bricks", "--images", images, "--grid-sizes", "64,192", "--grid-patchsize",
                     "3,5", *GRID, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((root / "bricks.tuned.yaml").read_text())
    assert config["categories"]["bricks"]["imagesize"] == 192
    tried = {(t["imagesize"], t["patchsize"]): t for t in config["tune"]["tried"]}
    assert set(tried) == {(64, 3), (64, 5), (192, 3), (192, 5)}, set(tried)
    chosen = [key for key, t in tried.items() if t["chosen"]]
    assert len(chosen) == 1 and chosen[0][0] == 192 and chosen[0][1] == config["categories"]["bricks"]["patchsize"]
    best = lambda size: max(t["proxy_auroc"] for (s, _), t in tried.items() if s == size)
    assert best(192) >= best(64) + 0.1, tried
    for t in tried.values():
        assert t["cpu_ms"]["layer2"] > 0 and t["cpu_ms"]["search"] > 0 and t["estimated_fps"] > 0
    assert "chosen for line bricks: efficientnet_lite0 192px" in done.stdout

    trained = patchline("train", "--line", "bricks", "--images", images, "--config", "bricks.tuned.yaml", "--quiet",
                        cwd=root)
    assert trained.returncode == 0, trained.stderr[-3000:]
    import json

    line_dir = root / "faiss-index-precision" / "bricks"
    meta = json.loads((line_dir / (line_dir / "CURRENT").read_text().strip() / "bank.json").read_text())
    assert meta["imagesize"] == 192 and meta["layers"] == ["layer2"]
    assert meta["patchsize"] == config["categories"]["bricks"]["patchsize"]
    assert meta["aggregation"] == config["categories"]["bricks"]["aggregation"]


def test_a_budget_no_setting_meets_is_refused_in_one_sentence(good_images):
    root, images = good_images
    done = patchline("tune", "--line", "fast", "--images", images, "--grid-sizes", "64", "--budget-fps", "1000000",
                     *GRID, cwd=root)
    assert done.returncode == 2 and "no setting tried reaches 1000000 frames/s" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (root / "fast.tuned.yaml").exists()


def test_an_even_patch_size_in_the_grid_is_refused_in_one_sentence_before_any_work(good_images):
    root, images = good_images
    done = patchline("tune", "--line", "even", "--images", images, "--grid-sizes", "64", "--grid-patchsize", "3,4",
                     *GRID, cwd=root)
    assert done.returncode == 2 and "patchsize must be odd" in done.stderr and "got 4" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not (root / "even.tuned.yaml").exists()


def test_too_few_good_images_to_tune_on_is_one_sentence(tmp_path):
    make_texture_dataset(tmp_path / "data", ("brick",), n_train=6, n_test_good=1, n_test_defect=1, size=96, seed=1)
    done = patchline("tune", "--line", "few", "--images", tmp_path / "data" / "brick" / "train" / "good",
                     "--grid-sizes", "64", *GRID, cwd=tmp_path)
    assert done.returncode == 2 and "tuning needs at least 8 good images" in done.stderr, done.stderr[-2000:]


def _tried(config):
    return config["tune"]["tried"]


def test_halving_tries_every_setting_on_a_sample_and_the_best_few_on_every_image(tmp_path):
    # 40 good images, rung 1 on 18 of them: the 4 settings all appear, 2 of them (--keep 2) were tried
    # again on every image, and the choice is one of those
    make_texture_dataset(tmp_path / "data", ("brick",), n_train=40, n_test_good=1, n_test_defect=1, size=96, seed=5)
    done = patchline("tune", "--line", "halves", "--images", tmp_path / "data" / "brick" / "train" / "good",
                     "--grid-sizes", "32,96", "--grid-layers", "layer2,layer2+layer3", "--grid-backbones",
                     "efficientnet_lite0", "--grid-coreset", "0.1", "--sample", "18", "--keep", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tune rung 1: all 4 settings on 12 bank images" in done.stderr
    assert "min left in this rung" in done.stderr and "tune rung 2: the best 2" in done.stderr
    tried = _tried(yaml.safe_load((tmp_path / "halves.tuned.yaml").read_text()))
    assert len(tried) == 4 and sorted(t["rung"] for t in tried) == [1, 1, 2, 2]
    assert {t["bank_images"] for t in tried if t["rung"] == 2} == {30} and {t["bank_images"] for t in tried
                                                                           if t["rung"] == 1} == {12}
    (chosen,) = [t for t in tried if t["chosen"]]
    assert chosen["rung"] == 2
    # how sure the proxy is: the share of draws of its held-out images in which each setting the choice
    # was made among comes first; an unsettled choice is said in one sentence, printed and recorded
    shares = [t["first_in_resamples"] for t in tried if t["rung"] == 2]
    assert all(0 <= s <= 1 for s in shares) and abs(sum(shares) - 1) < 0.01, shares
    assert all(t["first_in_resamples"] is None for t in tried if t["rung"] == 1)
    assert "first in" in done.stdout.splitlines()[0]
    uncertain = yaml.safe_load((tmp_path / "halves.tuned.yaml").read_text())["tune"]["uncertain_choice"]
    assert (uncertain is not None) == (chosen["first_in_resamples"] < 0.5)
    assert uncertain is None or uncertain in done.stdout
    rung1 = [t for t in tried if t["rung"] == 1]
    assert all(t["search_ms_scaled_from_sample"] or t["search"] == "hnsw" for t in rung1)


def test_tune_picks_an_image_size_above_the_frame_when_only_upsampling_shows_the_defects(tmp_path):
    # 64-px frames of brick texture: at the frame's own size a one-pixel crack or a 6-px spot falls
    # inside one stride-8 patch of a busy texture; upsampled to 192 px it spans several
    make_texture_dataset(tmp_path / "data", ("brick",), n_train=24, n_test_good=1, n_test_defect=1, size=64, seed=4)
    done = patchline("tune", "--line", "small", "--images", tmp_path / "data" / "brick" / "train" / "good",
                     "--grid-sizes", "64,192", *GRID, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((tmp_path / "small.tuned.yaml").read_text())
    assert config["categories"]["small"]["imagesize"] == 192, _tried(config)
    by_size = {t["imagesize"]: t["proxy_auroc"] for t in _tried(config)}
    assert by_size[192] > by_size[64], by_size


def test_known_bad_images_rank_settings_but_never_enter_the_bank_or_the_threshold(tmp_path):
    make_texture_dataset(tmp_path / "data", ("brick",), n_train=24, n_test_good=1, n_test_defect=6, size=96, seed=6,
                         defect_folder="bad")
    good, bad = tmp_path / "data" / "brick" / "train" / "good", tmp_path / "data" / "brick" / "test" / "bad"
    done = patchline("tune", "--line", "known", "--images", good, "--defects", bad, "--grid-sizes", "64", *GRID,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((tmp_path / "known.tuned.yaml").read_text())
    assert config["tune"]["defects"] == str(bad) and config["tune"]["n_defects"] == 6
    assert all("real" in t["families"] for t in _tried(config))
    trained = patchline("train", "--line", "known", "--images", good, "--config", "known.tuned.yaml", "--quiet",
                        cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    import json

    from patchline.data.datasets import good_images as listed
    from patchline.training.train import image_list_sha256

    line_dir = tmp_path / "faiss-index-precision" / "known"
    meta = json.loads((line_dir / (line_dir / "CURRENT").read_text().strip() / "bank.json").read_text())
    assert meta["training"]["n_images"] == 24
    assert meta["training"]["image_list_sha256"] == image_list_sha256(listed(good))
    assert meta["threshold_policy"]["promise"]["n_images"] == 24
    assert image_list_sha256(listed(good) + listed(bad)) != meta["training"]["image_list_sha256"]


def test_too_many_known_bad_images_is_one_sentence(good_images, tmp_path):
    root, images = good_images
    bad = tmp_path / "bad"
    bad.mkdir()
    source = next(images.iterdir())
    for i in range(201):
        (bad / f"{i:03d}.png").write_bytes(source.read_bytes())
    done = patchline("tune", "--line", "many", "--images", images, "--defects", bad, "--grid-sizes", "64", *GRID,
                     cwd=root)
    assert done.returncode == 2 and "tune scores at most 200 known-bad images" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_when_no_setting_sees_the_defects_tune_says_so_in_one_sentence_and_records_it(tmp_path):
    # every good image is fresh coarse noise and the grid's only size is 32 px: at that size the
    # subtle defects of a 192-px frame are a pixel or two inside noise as strong as they are
    rng = np.random.default_rng(8)
    folder = tmp_path / "noise"
    folder.mkdir()
    import cv2

    for i in range(24):
        coarse = rng.integers(0, 256, (24, 24), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(coarse, (192, 192), interpolation=cv2.INTER_NEAREST))
    done = patchline("tune", "--line", "noise", "--images", folder, "--grid-sizes", "32", *GRID, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((tmp_path / "noise.tuned.yaml").read_text())
    sentence = config["tune"]["no_good_setting"]
    assert sentence and sentence.startswith("no setting tried is good") and "--grid-sizes" in sentence, config["tune"]
    assert sentence in done.stdout and "Traceback" not in done.stderr


def _labelled_parts(root, rng):
    """192-px plain gray parts, each with a 40-px brick-texture label at a random place: 24 good, and
    parts whose label is missing (6 known-bad for --defects, 8 for the test beside 8 good ones)."""
    import cv2

    from sample_data import random_crops, texture_photo

    labels = random_crops(texture_photo("brick"), 46, (40, 40), rng)

    def part(label):
        image = np.full((192, 192, 3), 128, np.uint8)
        if label is not None:
            y, x = rng.integers(48, 104, size=2)
            image[y:y + 40, x:x + 40] = label
        return image

    for folder, rows, missing in (("train/good", range(24), False), ("known_bad", range(24, 30), True),
                                  ("test/missing", range(30, 38), True), ("test/good", range(38, 46), False)):
        (root / "parts" / folder).mkdir(parents=True)
        for i in rows:
            cv2.imwrite(str(root / "parts" / folder / f"{i:03d}.png"), part(None if missing else labels[i]))
    return root / "parts" / "train" / "good", root / "parts" / "known_bad"


def test_tune_picks_the_two_sided_statistic_when_only_it_sees_a_missing_label_and_train_and_evaluate_use_it(tmp_path):
    # a part without its label is plain gray everywhere, which every good part also has around its label:
    # every patch lies close to the bank, so no one-sided aggregation rises; only its mean falls below
    # every good part's, which the two-sided statistic's low side sees
    import csv
    import json

    from patchline.core.metrics import auroc
    from patchline.core.scoring import AGGREGATIONS

    good, bad = _labelled_parts(tmp_path, np.random.default_rng(11))
    grid = ["--grid-sizes", "192", *GRID]
    plain = patchline("tune", "--line", "parts", "--images", good, "--defects", bad, *grid, "--out", "one.yaml",
                      cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    done = patchline("tune", "--line", "parts", "--images", good, "--defects", bad, "--grid-two-sided", *grid,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one_sided = _tried(yaml.safe_load((tmp_path / "one.yaml").read_text()))[0]
    config = yaml.safe_load((tmp_path / "parts.tuned.yaml").read_text())
    two_sided = _tried(config)[0]
    assert config["categories"]["parts"]["aggregation"] == "two-sided" == two_sided["aggregation"]
    assert one_sided["aggregation"] != "two-sided" and one_sided["families"]["real"] < 0.5, one_sided
    assert two_sided["families"]["real"] >= 0.95 and two_sided["proxy_auroc"] > one_sided["proxy_auroc"] + 0.2

    trained = patchline("train", "--line", "parts", "--images", good, "--config", "parts.tuned.yaml", "--quiet",
                        cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    line_dir = tmp_path / "faiss-index-precision" / "parts"
    meta = json.loads((line_dir / (line_dir / "CURRENT").read_text().strip() / "bank.json").read_text())
    assert meta["aggregation"] == "two-sided" and set(meta["score_reference"]) == {"high", "low"}
    evaluated = patchline("evaluate", "--dataset", tmp_path, "--category", "parts", "--config", "parts.tuned.yaml",
                          "--out", "results", "--overlays", "0", "--quiet", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    with open(tmp_path / "results" / "parts" / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in rows])
    column = lambda name: np.array([float(r[name]) for r in rows])
    assert auroc(labels, column("two-sided")) >= 0.95
    assert max(auroc(labels, column(a)) for a in AGGREGATIONS) <= 0.5
    missing = column("two-sided")[labels == 1]
    assert (missing > meta["threshold"]).mean() >= 0.75, "most parts without a label alarm at the bank's threshold"
    # an operator calling such a part good cannot teach it by growing the bank: more patches only lower its scores
    alarmed = [tmp_path / r["image"] for r in rows if int(r["label"]) and float(r["two-sided"]) > meta["threshold"]]
    refused = patchline("feedback", "parts", "--false-alarm", alarmed[0], "--quiet", cwd=tmp_path)
    assert refused.returncode != 0 and "plainer than the good images" in refused.stderr, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    assert (line_dir / "CURRENT").read_text().strip() == meta["version"]
