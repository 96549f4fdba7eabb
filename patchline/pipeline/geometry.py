"""What a stream's elements tell the ones after them, negotiated while the stream is built.

Elements are built in the order of the links (source first). Each reads what the elements before
it settled and adds what it knows: the resize (its kind, and its size unless a stretch leaves the
size to what follows), the crop size, each model's input and outputs, the backbone the models were
exported from, the channels of every layer output — and at the end the post-process names the
line it judges and how to read its live bank. The post-process checks its bank against this;
`patchline check` prints it; the run reads the line and bank version from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from patchline.errors import PatchlineError



def shape_text(dims) -> str:
    """A tensor shape for messages: (N, 40, 28, 28), symbolic dims (a dynamic batch) shown as N."""
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" for d in dims) + ")"


@dataclass(frozen=True)
class ModelOutputs:
    """A model element's file and its outputs (onnxruntime NodeArg: name, shape)."""

    path: str
    outputs: tuple


@dataclass(frozen=True)
class JudgedLine:
    """The line a stream judges: its name, and its live bank's version and BankMeta (read at call time:
    the bank may be swapped while the stream runs)."""

    name: str
    version: Callable[[], str | None]
    meta: Callable[[], Any]


@dataclass
class StreamGeometry:
    """The negotiated stream: image sizes, models, backbone, and the judged line.

    resize is None after a stretch that left its size open, until a crop or the first image
    model's input fixes it (`fix_size`), as the MindX SDK takes the size from the model.
    """

    resize_type: str | None = None
    resize: int | None = None
    imagesize: int | None = None
    backbone: str | None = None
    models: dict[str, ModelOutputs] = field(default_factory=dict)  # element name → its outputs
    layer_channels: dict[str, int] = field(default_factory=dict)  # layer output name → channels
    judged: JudgedLine | None = None
    size_open: bool = False  # a stretch without sizes waits for the next size given

    def set_resize(self, resize_type: str, size: int | None) -> None:
        self.resize_type, self.resize = resize_type, size
        self.size_open = size is None

    def fix_size(self, size: int) -> None:
        """A crop or an image model says the size: an open stretch takes it."""
        if self.size_open:
            self.resize, self.size_open = int(size), False

    def set_crop(self, size: int) -> None:
        self.fix_size(size)
        self.imagesize = size

    def set_backbone(self, backbone: str, model_path: str) -> None:
        """The backbone a model was exported for; every model of a stream must share it."""
        if self.backbone is None:
            self.backbone = backbone
        elif self.backbone != backbone:
            raise PatchlineError(f"model {model_path} is for backbone {backbone} but an earlier model of this "
                                 f"stream is for {self.backbone}.")

    def add_model(self, element: str, path: str, outputs) -> None:
        """A model element's outputs; the channels of its 4-D outputs by name (the bank checks them)."""
        self.models[element] = ModelOutputs(path, tuple(outputs))
        for out in outputs:
            if len(out.shape) == 4 and isinstance(out.shape[1], int):
                self.layer_channels[out.name] = out.shape[1]

    def expected_bank(self) -> dict:
        """What the line's bank must have been built with: backbone, resize_type, resize, imagesize."""
        return {"backbone": self.backbone, "resize_type": self.resize_type, "resize": self.resize,
                "imagesize": self.imagesize}
