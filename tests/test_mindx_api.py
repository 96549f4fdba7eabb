"""The MindX SDK's host API on patchline's runner (patchline.mindx): SDK-style applications in
tests/mindx_apps/ (no patchline import) run unchanged with `python -m patchline.mindx APP.py`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mindx_support import run_app

from pipeline_support import LINE, prepare_trained_line

LAYER2 = "models/efficientnet_lite0_224_layer2.onnx"
LAYER3 = "models/efficientnet_lite0_224_layer3.onnx"


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def test_a_reference_style_feature_extractor_gets_patchlines_features(line, tmp_path):
    from patchline.core.preprocess import load_image, preprocess
    from patchline.extractors.onnx import OnnxFeatureExtractor

    images = sorted(p for p in line.frames.iterdir() if p.name != line.corrupt)[:4]
    out = tmp_path / "features.npz"
    run_app("feature_extractor.py", LAYER2, LAYER3, str(out), *map(str, images), cwd=line.workdir)
    got = np.load(out)
    extractor = OnnxFeatureExtractor(line.workdir / LAYER2, line.workdir / LAYER3, ("layer2", "layer3"))
    for i, path in enumerate(images):
        want = extractor(preprocess(load_image(path), 256, 224)[None])
        for layer in ("layer2", "layer3"):
            assert got[f"{layer}_{i}"].shape == want[layer].shape
            assert np.abs(got[f"{layer}_{i}"] - want[layer]).max() < 1e-4


@pytest.mark.parametrize("mode", ["normal", "unique"])
def test_a_streaming_app_gets_evaluates_scores_in_the_sdks_json(line, tmp_path, mode):
    names = sorted(line.expected)
    paths = [str(line.frames / n) for n in names] + [str(line.frames / line.corrupt)]
    out = tmp_path / "results.json"
    run_app("stream_scores.py", LINE, LAYER2, LAYER3, str(out), *(["--unique"] if mode == "unique" else []), *paths,
            cwd=line.workdir)
    results = json.loads(out.read_text())
    for i, name in enumerate(names):
        result = results[str(line.frames / name)]
        assert set(result) == {"MxpiClass", "MxpiFrameInfo"}
        (item,) = result["MxpiClass"]
        want = line.expected[name]
        assert abs(item["confidence"] - want["score"]) <= 1e-4 * max(1.0, abs(want["score"]))
        assert item["className"] in ("good", "defect") and item["classId"] == (item["className"] == "defect")
        assert result["MxpiFrameInfo"]["frameId"] == i and result["MxpiFrameInfo"]["isEos"] is False
    corrupt = results[str(line.frames / line.corrupt)]
    assert corrupt["errorCode"] != 0 and "not a readable image" in corrupt["errorMsg"]
