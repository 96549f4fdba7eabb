"""MobileNetV2 in MindSpore with torchvision's parameter names (``features.N…``, ``classifier.1``).

Split for PatchCore: ``to_layer2`` = ``features[0..6]`` (32 ch, stride 8),
``to_layer3`` = ``features[7..13]`` (96 ch, stride 16); ``construct`` gives ImageNet logits.
"""

from __future__ import annotations

from mindspore import nn, ops

# (expand ratio t, channels c, repeats n, stride s) — torchvision's inverted_residual_setting.
SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAYER2_LAST = 6
LAYER3_LAST = 13


def _conv(cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> nn.Conv2d:
    pad = (k - 1) // 2
    if pad:
        return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=pad, group=group, has_bias=False)
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="valid", group=group, has_bias=False)


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> nn.SequentialCell:
    return nn.SequentialCell([_conv(cin, cout, k, stride, group), nn.BatchNorm2d(cout, eps=1e-5), nn.ReLU6()])


class InvertedResidual(nn.Cell):
    """torchvision InvertedResidual: ``conv`` = [pw expand] → dw → pw-linear → bn."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [_conv_bn_relu(cin, mid, 1)]
        layers += [_conv_bn_relu(mid, mid, 3, stride, group=mid), _conv(mid, cout, 1), nn.BatchNorm2d(cout, eps=1e-5)]
        self.conv = nn.SequentialCell(layers)
        self.use_res = stride == 1 and cin == cout

    def construct(self, x):
        if self.use_res:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Cell):
    """MobileNetV2 (width 1.0) with ``to_layer2`` / ``to_layer3``; ``construct``: (N,3,H,W) → (N,1000)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        features = [_conv_bn_relu(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in SETTING:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(_conv_bn_relu(cin, 1280, 1))
        self.to_layer2 = nn.SequentialCell(features[: LAYER2_LAST + 1])
        self.to_layer3 = nn.SequentialCell(features[LAYER2_LAST + 1 : LAYER3_LAST + 1])
        self.tail = nn.SequentialCell(features[LAYER3_LAST + 1 :])
        self.classifier = nn.Dense(1280, num_classes)
        for i, cell in enumerate(features):
            for name, param in cell.parameters_and_names():
                param.name = f"features.{i}.{name}"
        for name, param in self.classifier.parameters_and_names():
            param.name = f"classifier.1.{name}"  # torch: classifier = Sequential(Dropout, Linear)

    def construct(self, x):
        x = self.tail(self.to_layer3(self.to_layer2(x)))
        return self.classifier(ops.mean(x, (2, 3)))


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """torchvision MobileNetV2: layer2 32 ch (stride 8), layer3 96 ch (stride 16), 1000 logits."""
    return MobileNetV2(num_classes)
