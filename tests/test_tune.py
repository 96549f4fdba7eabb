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
