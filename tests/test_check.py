"""`patchline check PIPELINE`: a pipeline file, its models and its line's bank checked without
running a frame — real exported models (ONNX Runtime), real banks (faiss)."""

from __future__ import annotations

import json
import subprocess

import pytest
from pipeline_support import REPO, patchline, prepare_trained_line

from patchline.extractors.onnx import OnnxFeatureExtractor
from patchline.pipeline.config import load_pipeline
from patchline.settings import LineSettings, validate
from patchline.training.train import build_bank


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return prepare_trained_line(tmp_path_factory.getbasetemp() / "pipeline-line")


def file_settings(path) -> list[LineSettings]:
    """The line settings each post-process of a pipeline file needs its bank built with."""
    out = []
    for stream in load_pipeline(path, check_files=False).streams.values():
        by_factory = {el.factory: el.parsed for el in stream.elements.values()}
        layers = tuple("layer3" if "layer3" in el.parsed["modelPath"] else "layer2"
                       for el in stream.elements.values() if el.factory == "mxpi_tensorinfer")
        out.append(validate(LineSettings(
            line=by_factory["mxpi_classpostprocessor"]["class_props"]["line"], backbone="efficientnet_lite0",
            layers=layers, resize=by_factory["mxpi_imageresize"]["scaleValue"],
            imagesize=by_factory["mxpi_imagecrop"]["cropHeight"], coreset_ratio=0.05)))
    return out


def edited(name: str, tmp_path, **props):
    """A copy of shipped pipeline/<name> in tmp_path with props changed: element → {prop: value},
    a value None removing the prop."""
    data = json.loads((REPO / "pipeline" / name).read_text())
    stream = next(iter(data.values()))
    for element, changes in props.items():
        for prop, value in changes.items():
            if value is None:
                stream[element]["props"].pop(prop, None)
            else:
                stream[element]["props"][prop] = value
    path = tmp_path / f"edited_{name}"
    path.write_text(json.dumps(data))
    return path


def run_check(line, *args):
    return subprocess.run(patchline("check", *map(str, args)), cwd=line.workdir, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "pipeline").glob("*.pipeline")))
def test_every_shipped_pipeline_file_checks_out_against_banks_built_for_it(line, tmp_path, name):
    path = REPO / "pipeline" / name
    banks = tmp_path / "banks"
    images = sorted((line.workdir / "data" / "brick" / "train" / "good").glob("*.png"))
    for settings in {s.line: s for s in file_settings(path)}.values():
        extractor = OnnxFeatureExtractor(line.workdir / "models" / "efficientnet_lite0_224_layer2.onnx",
                                         line.workdir / "models" / "efficientnet_lite0_224_layer3.onnx",
                                         settings.layers)
        build_bank(settings, images, banks, extractor, progress=False)
    done = run_check(line, path, "--banks", banks)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "image (N, 3, 224, 224) → layer2 (N, 40, 28, 28)" in done.stdout  # the graph, with shapes
    assert "OK" in done.stdout.splitlines()[-1]
    if "layer3" in path.read_text():
        assert "layer2 (N, 40, 28, 28) → layer3 (N, 112, 14, 14)" in done.stdout


def test_a_model_that_does_not_fit_the_bank_fails_naming_both(line):
    # folder_layer2 runs the layer2 model only; the brick bank was built from layer2 + layer3
    done = run_check(line, REPO / "pipeline" / "folder_layer2.pipeline", "--line", "brick")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "bank brick/" in done.stderr and "models/efficientnet_lite0_224_layer2.onnx" in done.stderr
    assert "layers" in done.stderr


def test_a_layer3_model_of_another_backbone_is_named_beside_the_layer2_model(line, tmp_path):
    # layer3 reads a layer2 output it was not exported for: the shapes are compared before any frame
    path = edited("folder_layer2_layer3.pipeline", tmp_path,
                  mxpi_tensorinfer1={"modelPath": "models/efficientnet_lite0_224_layer2.onnx"})
    done = run_check(line, path, "--line", "brick")
    assert done.returncode == 2
    assert "mxpi_tensorinfer1" in done.stderr and "takes image (N, 3, 224, 224)" in done.stderr
    assert "gives layer2 (N, 40, 28, 28)" in done.stderr


def test_a_broken_file_lists_all_its_problems(line, tmp_path):
    path = edited("folder_layer2.pipeline", tmp_path, mxpi_imagecrop0={"cropWidth": "200"},
                  mxpi_tensorinfer0={"modelPath": "models/missing_224_layer2.onnx"})
    done = run_check(line, path)
    assert done.returncode == 2 and "2 problems" in done.stderr
    assert "prop 'cropWidth'" in done.stderr and "missing_224_layer2.onnx does not exist" in done.stderr


def test_a_line_trained_with_the_sdk_default_stretch_runs_a_plain_sdk_resize_as_evaluate_scores(line, tmp_path):
    # MindX's mxpi_imageresize without resizeType stretches (Resizer_Stretch) to the model's size; a
    # line trained with resize_type stretch is scored the same in the pipeline as on the shared path
    from patchline.bank.store import load_bank
    from patchline.core.scoring import aggregate
    from patchline.extractors.image_scores import score_images

    settings = validate(LineSettings(line="stretched", backbone="efficientnet_lite0", layers=("layer2", "layer3"),
                                     resize_type="stretch", resize=224, imagesize=224, coreset_ratio=0.05))
    images = sorted((line.workdir / "data" / "brick" / "train" / "good").glob("*.png"))
    extractor = OnnxFeatureExtractor(line.workdir / "models" / "efficientnet_lite0_224_layer2.onnx",
                                     line.workdir / "models" / "efficientnet_lite0_224_layer3.onnx", settings.layers)
    banks = tmp_path / "banks"
    build_bank(settings, images, banks, extractor, progress=False)
    # the SDK's defaults: Resizer_Stretch, sizes from the model
    path = edited("folder_layer2_layer3.pipeline", tmp_path,
                  mxpi_imageresize0={"resizeType": None, "scaleValue": None, "handleMethod": None})

    checked = run_check(line, path, "--line", "stretched", "--banks", banks)
    assert checked.returncode == 0, checked.stderr
    assert "stretched to 224 × 224 px" in checked.stdout
    refused = run_check(line, path, "--line", "brick")  # trained with the aspect kept
    assert refused.returncode == 2 and "resize_type" in refused.stderr

    frames = sorted(line.expected)[:6]
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in frames:
        (folder / name).write_bytes((line.frames / name).read_bytes())
    done = subprocess.run(patchline("run", str(path), "--source", str(folder), "--line", "stretched", "--banks",
                                    str(banks), "--quiet"), cwd=line.workdir, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    scores = {p["source"]: p["score"] for p in map(json.loads, done.stdout.splitlines()) if "score" in p}
    bank = load_bank(banks, "stretched")
    want = aggregate(score_images([folder / n for n in frames], bank, extractor, settings), bank.meta.aggregation)
    for name, expected in zip(frames, want):
        assert abs(scores[name] - expected) <= 1e-4 * abs(expected), (name, scores[name], expected)
