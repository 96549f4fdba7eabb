"""mxpi_tensorinfer: run one exported model on the tensor an upstream element produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from patchline.errors import PatchlineError
from patchline.pipeline.geometry import shape_text
from patchline.paths import models_dir
from patchline.extractors.onnx import model_name_facts, open_session, resolve_model_path
from patchline.pipeline.elements import Element, Prop, Where, non_negative_int, one_of, validate_props


def pipeline_model_path(text: str, pipeline_dir: Path | None) -> Path:
    """The model file a modelPath names (a `.om` name → the `.onnx` beside it).

    An absolute path stands as given. A relative one resolves against the pipeline file's folder
    when the model is there (a line's pipeline kept beside its models), otherwise against the
    working directory, as the MindX SDK resolves it (the shipped files name models/… that way).
    """
    path = resolve_model_path(text)
    if not path.is_absolute() and pipeline_dir is not None and (pipeline_dir / path).is_file():
        return pipeline_dir / path
    return path


class TensorInfer(Element):
    """modelPath's model on `dataSource`'s output → {output name: (1, C, h, w) float32}.

    The layer2 model reads the normalized image; the layer3 model names the layer2 tensorinfer as
    its dataSource and reads its `layer2` output, so layer2 is computed once per frame.
    """

    FACTORY = "mxpi_tensorinfer"
    # Frames waiting together run as one batch (the exported models take any batch). Not more
    # than 2: larger batches outgrow the cache (EfficientNet-Lite0 layer2, one thread: 1.8 CPU ms
    # per frame alone, 1.9 in twos, 2.9 in eights).
    max_batch = 2
    PROPS = {
        "modelPath": Prop(required=True, help="the exported model, e.g. models/<backbone>_<imagesize>_layer2.onnx"),
        "dataSource": Prop(),
        "deviceId": Prop(parse=non_negative_int, ignored="ONNX Runtime runs on the CPU"),
        "outputDeviceId": Prop(ignored="outputs stay in host memory"),
        "waitingTime": Prop(parse=non_negative_int, ignored="a batch takes the frames already waiting, never waits"),
        "singleBatchInfer": Prop(parse=one_of("0", "1")),
        "dynamicStrategy": Prop(parse=one_of("Nearest", "Upper", "Lower"),
                                ignored="the exported models take any batch size"),
    }

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        path = pipeline_model_path(parsed["modelPath"], options.get("pipeline_dir"))
        parsed["modelPath"] = str(path)  # what every later step (session, messages, check) opens
        root = models_dir().resolve()
        if not path.resolve().is_relative_to(root):  # a pipeline file names models, not any file
            raise where.error(f"{parsed['modelPath']} is outside the models folder {root} ($PATCHLINE_MODELS, "
                              f"default ./models); a pipeline file may only name models inside it.", "modelPath")
        if options.get("check_files", True) and not path.is_file():
            also = f" (resolved from {props['modelPath']})" if str(path) != props["modelPath"] else ""
            raise where.error(f"model file {path}{also} does not exist; export it with `patchline export`.",
                              "modelPath")
        return parsed

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.source = props["dataSource"]
        if props.get("singleBatchInfer") == "1":  # MindX: one frame per model call
            self.max_batch = 1
        self.workers = int(context.options.get("model_workers") or 1)  # session.run is thread-safe
        self.session = open_session(props["modelPath"], context.options.get("ort_threads"))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        geometry = context.geometry
        named = model_name_facts(resolve_model_path(props["modelPath"]))
        if "backbone" in named:
            geometry.set_backbone(named["backbone"], props["modelPath"])
        size = model_input.shape[2] if len(model_input.shape) == 4 else None
        if self.input_name == "image" and isinstance(size, int):
            if geometry.size_open:  # a stretch without sizes and no crop: stretch to the model's input
                geometry.fix_size(size)
                if geometry.imagesize is None:
                    geometry.imagesize = size
            if geometry.imagesize not in (None, size):
                raise PatchlineError(f"model {props['modelPath']} takes {size}-pixel images but the crop makes "
                                     f"{geometry.imagesize}-pixel ones.")
        self._check_input(model_input, props["modelPath"], geometry)
        geometry.add_model(name, props["modelPath"], self.session.get_outputs())

    def _check_input(self, model_input, model_path: str, geometry) -> None:
        """The model's input must be what its dataSource gives: another model's output (name and
        C, h, w), or the normalized (3, S, S) image. PatchlineError naming both otherwise, so
        swapped or mismatched models are refused at start, not frame by frame."""
        want = list(model_input.shape[1:])
        produced = geometry.models
        if self.source in produced:
            source_path, outputs = produced[self.source].path, produced[self.source].outputs
            by_name = {o.name: o for o in outputs}
            given = by_name.get(model_input.name) or (outputs[0] if len(outputs) == 1 else None)
            if given is None:
                raise PatchlineError(f"model {model_path} reads '{model_input.name}', which model {source_path} "
                                     f"({self.source}) does not produce (it gives {', '.join(by_name)}).")
            have, given_text = list(given.shape[1:]), f"{given.name} {shape_text(given.shape)}"
            source_text = f"model {source_path} ({self.source})"
        elif isinstance(geometry.imagesize, int):
            size = geometry.imagesize
            have, given_text, source_text = [3, size, size], f"images (N, 3, {size}, {size})", self.source
        else:
            return
        if len(want) != len(have) or any(isinstance(a, int) and a != b for a, b in zip(want, have)):
            raise PatchlineError(f"model {model_path} takes {model_input.name} {shape_text(model_input.shape)} but "
                                 f"{source_text} gives {given_text}; are the layer2 / layer3 models swapped or "
                                 f"exported for another backbone or size?")

    def _input(self, frame) -> np.ndarray:
        # dataSource names an image op (its array is in frame.meta) or a model (the names of its
        # outputs are in frame.meta, the arrays in frame.tensors).
        value = frame.meta.get(self.source)
        if isinstance(value, tuple):
            name = self.input_name if self.input_name in value else (value[0] if len(value) == 1 else None)
            value = frame.tensors.get(name) if name is not None else None
        if value is None:
            raise PatchlineError(f"{self.source} produced no input for model input '{self.input_name}'.")
        return value if value.ndim == 4 else value[None]

    def process(self, frame):
        return self.process_batch([frame])[0]

    def process_batch(self, frames: list) -> list:
        """One model call for the frames' stacked inputs; each frame gets its own (1, C, h, w) slices."""
        inputs = [self._input(frame) for frame in frames]
        batch = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        outputs = self.session.run(None, {self.input_name: batch})
        start = 0
        for frame, given in zip(frames, inputs):
            stop = start + given.shape[0]
            frame.tensors.update((name, out[start:stop]) for name, out in zip(self.output_names, outputs))
            frame.meta[self.name] = tuple(self.output_names)
            start = stop
        return frames
