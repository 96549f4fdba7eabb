"""Export a backbone as two ONNX models (image → layer2, layer2 → layer3) with a dynamic batch.

Also writes ``.mindir`` files beside them for MindSpore / Ascend users.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from patchline.errors import PatchlineError
from patchline.models.registry import backbone_spec, build_backbone

BATCH_DIM = "batch"


def model_paths(backbone: str, imagesize: int, out_dir: Path) -> dict[str, Path]:
    """{"layer2": out_dir/<backbone>_<imagesize>_layer2.onnx, "layer3": …_layer3.onnx}."""
    return {layer: Path(out_dir) / f"{backbone}_{imagesize}_{layer}.onnx" for layer in ("layer2", "layer3")}


def _make_batch_dynamic(model) -> None:
    """Turn dim 0 of every graph input/output into the symbolic ``batch`` dim; drop stale shape info."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    del model.graph.value_info[:]  # intermediate shapes were inferred for batch 1


def _export_onnx(cell, example: np.ndarray, path: Path, input_name: str, output_name: str) -> None:
    import mindspore as ms
    import onnx

    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.onnx")
    try:
        ms.onnx.export(cell, ms.Tensor(example), file_name=str(tmp), input_names=[input_name], output_names=[output_name])
        model = onnx.load(str(tmp))
        _make_batch_dynamic(model)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _export_mindir(cell, example: np.ndarray, path: Path) -> None:
    import mindspore as ms

    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mindir")
    try:
        ms.export(cell, ms.Tensor(example), file_name=str(tmp), file_format="MINDIR")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_models(backbone: str, weights: Path | None, imagesize: int, out_dir: Path) -> dict[str, Path]:
    """Write the layer2 / layer3 ONNX models (and ``.mindir`` twins) of ``backbone`` for ``imagesize``.

    layer2 model: input ``image`` float32 (batch, 3, imagesize, imagesize) → output ``layer2``
    (batch, C2, ⌈imagesize/8⌉, …). layer3 model: input ``layer2`` → output ``layer3`` (batch, C3, stride 16).
    ``weights``: MindSpore ``.ckpt`` or None (random init, seed 0). Returns {"layer2", "layer3",
    "layer2_mindir", "layer3_mindir"} → paths.
    """
    import mindspore as ms

    from patchline.models.mindspore_extractor import load_checkpoint_strict

    backbone_spec(backbone)
    if int(imagesize) < 32:
        raise PatchlineError(f"Image size {imagesize} is too small to export; use at least 32 pixels.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ms.set_seed(0)
    net = build_backbone(backbone)
    if weights is not None:
        load_checkpoint_strict(net, Path(weights))
    net.set_train(False)

    image = np.zeros((1, 3, imagesize, imagesize), np.float32)
    layer2 = net.to_layer2(ms.Tensor(image)).asnumpy()
    paths = model_paths(backbone, imagesize, out_dir)
    _export_onnx(net.to_layer2, image, paths["layer2"], "image", "layer2")
    _export_onnx(net.to_layer3, layer2, paths["layer3"], "layer2", "layer3")
    for layer, cell, example in (("layer2", net.to_layer2, image), ("layer3", net.to_layer3, layer2)):
        mindir = paths[layer].with_suffix(".mindir")
        _export_mindir(cell, example, mindir)
        paths[f"{layer}_mindir"] = mindir
    return paths
