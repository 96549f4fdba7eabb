"""A product line's story: good texture crops → bank → evaluation finds the pasted defects.

Real MindSpore (EfficientNet-Lite0 with its real ImageNet weights), real faiss, real files.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from patchline.bank.store import load_bank
from patchline.core.scoring import AGGREGATIONS
from sample_data import make_texture_dataset

LITE0 = ["--backbone", "efficientnet_lite0", "--layer", "layer2,layer3", "--resize", "160", "--imagesize", "128",
         "--coreset", "0.1", "--batch-size", "8"]


def patchline(*args, cwd=None, models=None):
    env = None
    if models is not None:
        import os

        env = {**os.environ, "PATCHLINE_MODELS": str(models)}
    return subprocess.run([sys.executable, "-m", "patchline.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("line")
    dataset = make_texture_dataset(root / "mvtec", categories=("brick",), n_train=20, n_test_good=8,
                                   n_test_defect=12, size=192, seed=3)
    banks, models = root / "banks", root / "models"
    config = root / "textures.yaml"
    config.write_text("defaults: {backbone: efficientnet_lite0}\ncategories: {brick: {}}\n")
    done = patchline("train", "brick", "--dataset", dataset, "--config", config,
                     "--banks", banks, "--quiet", *LITE0, models=models)
    assert done.returncode == 0, done.stderr
    out = root / "results"
    evaluated = patchline("evaluate", "--dataset", dataset, "--banks", banks, "--out", out, "--quiet", models=models)
    assert evaluated.returncode == 0, evaluated.stderr
    return {"root": root, "dataset": dataset, "banks": banks, "models": models, "out": out,
            "train": done, "evaluate": evaluated}


def test_training_writes_a_calibrated_bank_with_its_provenance(trained):
    bank = load_bank(trained["banks"], "brick")
    meta = bank.meta
    assert meta["backbone"] == "efficientnet_lite0" and meta["layers"] == ["layer2", "layer3"]
    assert meta["embedding_dim"] == 40 + 112 and meta["grid"] == [16, 16]
    # the default calibration, leave-one-out: every image in the bank, each scored without its own patches
    assert meta["training"]["n_images"] == 20 and meta["training"]["n_holdout_images"] == 0
    assert meta["training"]["calibration"] == "leave_one_out" and "leave-one-out" in meta["threshold_policy"]["scheme"]
    assert meta["n_patches"] == round(0.1 * 20 * 16 * 16)
    assert meta["aggregation"] in AGGREGATIONS and meta["threshold"] > 0
    assert "held-out" in meta["threshold_policy"]["method"] and meta["threshold_policy"]["false_alarm_rate"] == 0.01
    kept = meta["calibration_scores"]["image"][meta["aggregation"]]  # every held-out score, for `patchline threshold`
    assert len(kept) == 20 and len(meta["calibration_scores"]["map_peak"]) == 20 and max(kept) == meta["threshold"]
    promise = meta["threshold_policy"]["promise"]
    assert promise["n_images"] == 20 and promise["n_above"] == 0 and "at least 99 good images" in promise["warning"]
    assert "warning: 20 held-out good images cannot support a 1 % false-alarm target" in trained["train"].stdout
    assert set(meta["aggregation_choice"]["synthetic_auroc"]) == set(AGGREGATIONS)
    assert meta["weights"]["source"].startswith("ImageNet") and len(meta["weights"]["sha256"]) == 64
    assert "line brick: bank" in trained["train"].stdout


def test_evaluation_finds_the_defects_and_reports_every_aggregation(trained):
    rows = list(csv.DictReader(open(trained["out"] / "results.csv")))
    assert len(rows) == 1
    row = rows[0]
    for name in AGGREGATIONS:
        assert 0.0 <= float(row[f"auroc_{name}"]) <= 1.0
    assert float(row["auroc_chosen"]) >= 0.9, row
    assert float(row["pixel_auroc"]) >= 0.85, row
    assert float(row["pro"]) >= 0.5, row
    table = (trained["out"] / "results.md").read_text()
    assert "auroc_topk100" in table and "| brick |" in table
    reference_layout = (trained["out"] / "reference_layout.md").read_text()  # the reference project's column names
    assert "instance_auroc_dx" in reference_layout and "| brick | patchline |" in reference_layout
    overlays = list((trained["out"] / "brick" / "overlays").glob("*.png"))
    assert len(overlays) == 6
    scores = list(csv.DictReader(open(trained["out"] / "brick" / "scores.csv")))
    assert len(scores) == 20 and set(AGGREGATIONS) <= set(scores[0])


def test_retraining_a_line_makes_a_new_current_version(trained, tmp_path):
    before = load_bank(trained["banks"], "brick").version
    done = patchline("train", "--line", "brick", "--images", trained["dataset"] / "brick" / "train" / "good",
                     "--banks", trained["banks"], "--quiet", *LITE0, models=trained["models"])
    assert done.returncode == 0, done.stderr
    assert load_bank(trained["banks"], "brick").version != before


def test_a_bank_of_another_backbone_is_refused_by_evaluate(trained, tmp_path):
    meta_path = load_bank(trained["banks"], "brick").path / "bank.json"
    meta = json.loads(meta_path.read_text())
    meta["weights"]["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    done = patchline("evaluate", "--dataset", trained["dataset"], "--banks", trained["banks"], "--out", tmp_path,
                     models=trained["models"])
    assert done.returncode == 2 and "built with weights" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args,message", [
    (["train", "bottle", "--dataset", "/nonexistent/mvtec"], "does not exist"),
    (["train", "--line", "x", "--images", "/nonexistent/good"], "does not exist"),
    (["train", "--line", "x", "--images", "{empty}"], "holds no images"),
    (["train", "--line", "x", "--images", "{few}", "--backbone", "efficientnet_lite0"], "at least 5 good images"),
    (["train", "--line", "x", "--images", "{few}", "--resize", "200", "--imagesize", "224"], "larger than resize"),
    (["train", "bottel", "--dataset", "{empty}"], "unknown category 'bottel'"),
    (["train", "--line", "x", "--images", "{broken}", "--backbone", "efficientnet_lite0"], "not a readable image"),
    (["train", "--line", "x", "--images", "{broken}"], "needs ImageNet weights"),
    (["evaluate", "--dataset", "{empty}"], "no MVTec AD category"),
    (["train", "--line", "x", "--images", "{broken}", "--backbone", "resnet9000"], "Unknown backbone"),
    (["train", "--line", "x", "--images", "{good}", "--backbone", "efficientnet_lite0", "--resize", "64",
      "--imagesize", "64", "--target-dim", "9999"], "target_dim 9999 is larger than the 40 channels"),
])
def test_bad_input_gets_one_sentence_and_a_non_zero_exit(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    few = tmp_path / "few"
    few.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(few / f"{i}.png"), np.full((64, 64), 100 + i, np.uint8))
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(6):
        cv2.imwrite(str(broken / f"{i}.png"), np.full((64, 64), 100 + i, np.uint8))
    (broken / "9.png").write_bytes(b"\x89PNG not really")
    good = tmp_path / "good"
    good.mkdir()
    for i in range(6):
        cv2.imwrite(str(good / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (64, 64), np.uint8))
    args = [a.format(empty=empty, few=few, broken=broken, good=good) for a in args]
    done = patchline(*args, "--banks", tmp_path / "banks", "--quiet", models=tmp_path / "models") if args[0] == "train" \
        else patchline(*args, models=tmp_path / "models")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_crossfit_puts_every_image_in_the_bank_and_never_scores_one_against_a_bank_holding_it(trained, tmp_path):
    banks = tmp_path / "banks"
    images = trained["dataset"] / "brick" / "train" / "good"
    done = patchline("train", "--line", "crossfit", "--images", images, "--banks", banks, "--quiet",
                     "--calibration", "crossfit", "--folds", "4", *LITE0, models=trained["models"])
    assert done.returncode == 0, done.stderr
    meta = load_bank(banks, "crossfit").meta
    names = sorted(p.name for p in images.iterdir())
    assert meta["training"]["n_bank_images"] == 20 and meta["training"]["n_holdout_images"] == 0
    assert meta["n_patches"] == round(0.1 * 20 * 16 * 16)  # every image's patches went into the coreset
    folds = meta["threshold_policy"]["folds"]
    assert len(folds) == 4 and "cross-fitted" in meta["threshold_policy"]["scheme"]
    assert sorted(n for f in folds for n in f["scored"]) == names  # every image scored once
    for fold in folds:  # … against a bank built from the other folds only
        assert not set(fold["scored"]) & set(fold["bank"]) and sorted(fold["scored"] + fold["bank"]) == names
    assert meta["threshold_policy"]["n_holdout"] == 20 and meta.threshold > 0


def test_the_html_report_shows_the_roc_the_histogram_and_overlays_in_a_real_browser(trained, tmp_path):
    from browser import chromium_page

    report = trained["out"] / "report.html"
    assert f"report: {report}" in trained["evaluate"].stdout
    data = json.loads((trained["out"] / "brick" / "report.json").read_text())
    assert len(data["labels"]) == 20 and set(AGGREGATIONS) <= set(data["scores"])
    with chromium_page() as page:
        page.goto(report.as_uri())
        loaded = "img => img.complete && img.naturalWidth > 100"
        assert page.locator("section#brick img.roc").evaluate(loaded)
        assert page.locator("section#brick img.histogram").evaluate(loaded)
        overlays = page.locator("section#brick figure.overlay img")
        assert overlays.count() >= 8  # 4 highest and 4 lowest of the 12 defects, plus any false alarm
        assert all(overlays.nth(i).evaluate(loaded) for i in range(overlays.count()))
        assert page.locator("section#brick figure.top_defects figcaption").first.inner_text().startswith("score ")
        chosen = page.locator("section#brick tr.chosen td").first.inner_text()
        assert chosen.startswith(data["aggregation"])
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
