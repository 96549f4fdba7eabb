"""The exported layer2 / layer3 models under ONNX Runtime, inside and outside the pipeline.

`OnnxFeatureExtractor` has the call signature of `MindSporeFeatureExtractor`, so `patchline
evaluate`-style code can score with the exported models; `open_session` is what the pipeline's
`mxpi_tensorinfer` uses, so both run the models the same way.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from patchline.errors import PatchlineError
from patchline.paths import ort_threads

log = logging.getLogger(__name__)
_MODEL_NAME = re.compile(r"^(?P<backbone>.+)_(?P<imagesize>\d+)_(?P<layer>layer[23])$")


def resolve_model_path(path: str | Path) -> Path:
    """The file to load for a modelPath: a `.om` (Ascend) resolves to the `.onnx` beside it.

    patchline's runner executes ONNX models only; the `.om` twin is for the MindX SDK on Ascend.
    """
    path = Path(path)
    return path.with_suffix(".onnx") if path.suffix.lower() == ".om" else path


def model_name_facts(path: Path) -> dict:
    """{"backbone", "imagesize", "layer"} read from a `<backbone>_<imagesize>_<layer>.onnx` name, or {}."""
    match = _MODEL_NAME.match(Path(path).stem)
    if not match:
        return {}
    return {"backbone": match["backbone"], "imagesize": int(match["imagesize"]), "layer": match["layer"]}


def open_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session tuned for a small box.

    No spin-waiting: idle worker threads sleep instead of burning the cores the other pipeline
    stages need. One inter-op thread, sequential execution (these graphs are plain chains).
    """
    import onnxruntime as ort

    path = resolve_model_path(path)
    if not path.is_file():
        raise PatchlineError(f"model file {path} does not exist; export it with `patchline export`.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or ort_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise PatchlineError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None


class OnnxFeatureExtractor:
    """Backbone features from the exported models: (N, 3, S, S) float32 → {layer: (N, C, h, w) float32}.

    layer3_path may be None when only layer2 is wanted; layer3 is computed from the layer2 output
    (never recomputed from the image).
    """

    def __init__(self, layer2_path: str | Path, layer3_path: str | Path | None, layers: Sequence[str],
                 threads: int | None = None):
        self.layers = tuple(layers)
        if "layer3" in self.layers and layer3_path is None:
            raise PatchlineError("layer3 features need the layer3 model (…_layer3.onnx).")
        self.layer2 = open_session(layer2_path, threads)
        self.layer3 = open_session(layer3_path, threads) if "layer3" in self.layers else None
        self._in2 = self.layer2.get_inputs()[0].name
        self._in3 = self.layer3.get_inputs()[0].name if self.layer3 else None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise PatchlineError(f"images must be an (N, 3, H, W) array; got shape {images.shape}.")
        l2 = self.layer2.run(None, {self._in2: images})[0]
        out = {}
        if "layer2" in self.layers:
            out["layer2"] = l2
        if self.layer3 is not None:
            out["layer3"] = self.layer3.run(None, {self._in3: l2})[0]
        return out
