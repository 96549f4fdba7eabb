"""Wide ResNet-50-2 / 101-2 in MindSpore, laid out like torchvision.

Parameter names equal torchvision's state_dict keys (``conv1.weight``, ``layer3.5.bn2.gamma`` …),
with MindSpore's batch-norm names: gamma/beta/moving_mean/moving_variance for torch's
weight/bias/running_mean/running_var.

The net is split for PatchCore: ``to_layer2`` (image → layer2 output, stride 8) and
``to_layer3`` (layer2 output → layer3 output, stride 16); ``construct`` gives ImageNet logits.
"""

from __future__ import annotations

from mindspore import nn, ops

EXPANSION = 4
WIDTH_PER_GROUP = 128  # "wide": twice the 64 of a plain ResNet


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    pad = (k - 1) // 2
    if pad:
        return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=pad, has_bias=False)
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="valid", has_bias=False)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.9)


class Bottleneck(nn.Cell):
    """torchvision Bottleneck (stride on the 3×3 conv, "ResNet v1.5")."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Cell | None = None):
        super().__init__()
        width = planes * WIDTH_PER_GROUP // 64
        self.conv1 = _conv(inplanes, width, 1)
        self.bn1 = _bn(width)
        self.conv2 = _conv(width, width, 3, stride)
        self.bn2 = _bn(width)
        self.conv3 = _conv(width, planes * EXPANSION, 1)
        self.bn3 = _bn(planes * EXPANSION)
        self.relu = nn.ReLU()
        self.has_downsample = downsample is not None
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.has_downsample:
            identity = self.downsample(x)
        return self.relu(out + identity)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.SequentialCell, int]:
    downsample = None
    if stride != 1 or inplanes != planes * EXPANSION:
        downsample = nn.SequentialCell([_conv(inplanes, planes * EXPANSION, 1, stride), _bn(planes * EXPANSION)])
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    inplanes = planes * EXPANSION
    layers += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
    return nn.SequentialCell(layers), inplanes


class _ToLayer2(nn.Cell):
    """Stem + layer1 + layer2: (N, 3, H, W) → (N, 512, H/8, W/8)."""

    def __init__(self, layers: list[int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, pad_mode="pad", padding=3, has_bias=False)
        self.bn1 = _bn(64)
        self.relu = nn.ReLU()
        # torch: MaxPool2d(3, 2, padding=1). After ReLU every value is >= 0, so zero padding then a
        # 'valid' pool is the same; MindSpore's ONNX exporter rejects MaxPool2d(pad_mode="pad").
        self.pad = nn.Pad(((0, 0), (0, 0), (1, 1), (1, 1)))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
        self.layer1, inplanes = _make_layer(64, 64, layers[0], 1)
        self.layer2, _ = _make_layer(inplanes, 128, layers[1], 2)

    def construct(self, x):
        x = self.maxpool(self.pad(self.relu(self.bn1(self.conv1(x)))))
        return self.layer2(self.layer1(x))


class _ToLayer3(nn.Cell):
    """layer3: (N, 512, h, w) → (N, 1024, h/2, w/2)."""

    def __init__(self, layers: list[int]):
        super().__init__()
        self.layer3, _ = _make_layer(512, 256, layers[2], 2)

    def construct(self, x):
        return self.layer3(x)


class WideResNet(nn.Cell):
    """Wide ResNet with ``to_layer2`` / ``to_layer3`` sub-Cells; ``construct``: (N,3,H,W) → (N,1000) logits."""

    def __init__(self, layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.to_layer2 = _ToLayer2(layers)
        self.to_layer3 = _ToLayer3(layers)
        self.layer4, inplanes = _make_layer(1024, 512, layers[3], 2)
        self.fc = nn.Dense(inplanes, num_classes)
        # Give every parameter its torchvision name (the sub-Cell split is ours, not torch's).
        for stage in (self.to_layer2, self.to_layer3):
            for name, param in stage.parameters_and_names():
                param.name = name
        for prefix, cell in (("layer4.", self.layer4), ("fc.", self.fc)):
            for name, param in cell.parameters_and_names():
                param.name = prefix + name

    def construct(self, x):
        x = self.layer4(self.to_layer3(self.to_layer2(x)))
        x = ops.mean(x, (2, 3))
        return self.fc(x)


def wide_resnet50_2(num_classes: int = 1000) -> WideResNet:
    """torchvision ``wide_resnet50_2``: layer2 512 ch (stride 8), layer3 1024 ch (stride 16)."""
    return WideResNet([3, 4, 6, 3], num_classes)


def wide_resnet101_2(num_classes: int = 1000) -> WideResNet:
    """torchvision ``wide_resnet101_2``: layer2 512 ch (stride 8), layer3 1024 ch (stride 16)."""
    return WideResNet([3, 4, 23, 3], num_classes)
