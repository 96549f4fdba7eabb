"""MindSpore feature extraction: numpy images in, numpy layer2/layer3 features out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from patchline.errors import PatchlineError
from patchline.models.registry import backbone_spec, build_backbone, check_layers


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
