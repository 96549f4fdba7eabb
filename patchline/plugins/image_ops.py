"""Image elements: decode, resize, crop, normalize — each a thin wrapper over `patchline.core.preprocess`.

They call the same functions training uses, so a frame reaches the model exactly as a training
image did: `resize_image` → `center_crop` → `normalize`.
"""

from __future__ import annotations

import numpy as np

from patchline.core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop,
    check_pixels,
    decode_image,
    normalize,
    resize_image,
)
from patchline.pipeline.elements import (
    Element,
    Prop,
    Where,
    float_list,
    non_negative_int,
    one_of,
    positive_int,
    validate_props,
)

SHORT_SIDE = "Resizer_KeepAspectRatio_Short"
STRETCH = "Resizer_Stretch"
RESIZE_TYPES = (STRETCH, "Resizer_KeepAspectRatio_Fit", "Resizer_KeepAspectRatio_Long", SHORT_SIDE,
                "Resizer_KeepAspectRatio_FastRCNN", "Resizer_OnlyPadding", "Resizer_Rescale",
                "Resizer_Rescale_Double", "Resizer_MS_Yolov4", "Resizer_PaddleOCR")


def _decode(frame) -> None:
    """Decode frame.data into frame.image unless the source delivered pixels already."""
    if frame.image is None:
        frame.image = decode_image(frame.data if frame.data is not None else b"", source=frame.source)
        frame.data = None
    check_pixels(frame.image)  # too small a frame is an error, not a defect
    if frame.frame_shape is None:
        frame.frame_shape = frame.image.shape[:2]


class ImageDecoder(Element):
    """Encoded bytes (PNG, JPEG, BMP, TIFF) → (H, W, 3) uint8 RGB, or (H, W) uint8 for a gray file
    (`decode_image`: the normalize step replicates it, as for training); decoded frames pass through.

    MindX decodes to BGR unless outputDataFormat says RGB; the backbones were trained on RGB, so a
    file that leaves it out (or asks for BGR) is refused rather than fed colours swapped.
    """

    FACTORY = "mxpi_imagedecoder"
    PROPS = {
        "handleMethod": Prop(default="opencv", parse=one_of("", "opencv", "ascend"),
                             ignored="frames are decoded with OpenCV on the CPU (no DVPP here)"),
        "outputDataFormat": Prop(default="BGR", parse=one_of("RGB", "BGR"), help="RGB (the backbones take RGB)"),
        "imageFormat": Prop(default="jpg", ignored="the format is read from the bytes (PNG, JPEG, BMP, TIFF)"),
        "dataType": Prop(default="uint8", parse=one_of("uint8")),
        "formatAdaptation": Prop(default="off", parse=one_of("off", "on"), ignored="frames keep their size"),
        "deviceId": Prop(parse=non_negative_int, ignored="decoding runs on the CPU"),
    }

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        if parsed["outputDataFormat"] != "RGB":
            given = "is BGR" if "outputDataFormat" in props else "is not set, and MindX then decodes to BGR"
            raise where.error(f"{given}; the backbones were trained on RGB images: set it to RGB.", "outputDataFormat")
        return parsed

    def process(self, frame):
        _decode(frame)
        return frame


class VideoDecoder(Element):
    """The RTSP source hands over decoded RGB frames, so this passes them on (it decodes stray bytes)."""

    FACTORY = "mxpi_videodecoder"
    PROPS = {
        "inputVideoFormat": Prop(default="H264", parse=one_of("H264", "H265"),
                                 ignored="the RTSP source decodes whatever the camera sends"),
        "outputImageFormat": Prop(default="YUV420SP_NV12", parse=one_of("YUV420SP_NV12", "YUV420SP_NV21", "RGB"),
                                  ignored="frames leave the RTSP source as RGB"),
        "vdecChannelId": Prop(parse=non_negative_int, ignored="there are no hardware decoder channels"),
        "deviceId": Prop(parse=non_negative_int, ignored="decoding runs on the CPU"),
    }

    def process(self, frame):
        _decode(frame)
        return frame


class ImageResize(Element):
    """The training resize, as MindX names it (`preprocess.resize_image` exactly):

    - Resizer_KeepAspectRatio_Short: the shorter side to `scaleValue` pixels, aspect kept (a line
      with resize_type short_side; "the shortest edge is set to scaleValue" in MindX too);
    - Resizer_Stretch (MindX's default): to resizeHeight × resizeWidth, aspect not kept (a line
      with resize_type stretch; lines stretch to a square). Omitted sizes come from the crop after
      it, else from the model's input, as the SDK takes them from the model.

    Other MindX resize types pad or keep the longer side, which no line is trained with: refused.
    """

    FACTORY = "mxpi_imageresize"
    PROPS = {
        "resizeType": Prop(default=STRETCH, parse=one_of(*RESIZE_TYPES), help=f"{SHORT_SIDE} or {STRETCH}"),
        "scaleValue": Prop(parse=positive_int, help="the shorter side after resizing, in pixels"),
        "resizeHeight": Prop(parse=positive_int),
        "resizeWidth": Prop(parse=positive_int),
        "handleMethod": Prop(default="opencv", parse=one_of("opencv")),
        "dataSource": Prop(),
    }

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        kind = parsed["resizeType"]
        if kind == SHORT_SIDE:
            for extra in ("resizeHeight", "resizeWidth"):
                if parsed[extra] is not None:
                    raise where.error(f"is ignored by {SHORT_SIDE} (MindX reads the shorter side from scaleValue); "
                                      f"remove it and set scaleValue.", extra)
            if parsed["scaleValue"] is None:
                raise where.error(f"is required with {SHORT_SIDE}: the shorter side after resizing, in pixels.",
                                  "scaleValue")
        elif kind == STRETCH:
            if parsed["scaleValue"] is not None:
                raise where.error(f"is not read by {STRETCH} (it stretches to resizeHeight × resizeWidth); remove it, "
                                  f"or set resizeType to {SHORT_SIDE}.", "scaleValue")
            height, width = parsed["resizeHeight"], parsed["resizeWidth"]
            if (height is None) != (width is None) or (height is not None and height != width):
                raise where.error(f"{STRETCH} here stretches to a square, as lines are trained: set resizeHeight and "
                                  f"resizeWidth to the same size (or omit both to take the model's input size).",
                                  "resizeWidth" if height is not None else "resizeHeight")
        else:
            raise where.error(f"{kind} would not reproduce the training resize; use {SHORT_SIDE} (scaleValue: the "
                              f"shorter side) or {STRETCH} (resizeHeight = resizeWidth).", "resizeType")
        return parsed

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.resize_type = "short_side" if props["resizeType"] == SHORT_SIDE else "stretch"
        self._size = props["scaleValue"] if self.resize_type == "short_side" else props["resizeHeight"]
        context.geometry.set_resize(self.resize_type, self._size)

    @property
    def resize(self) -> int | None:
        """Its size; a stretch without one takes what the stream settled after it (the crop's or the
        model's input size), None until then."""
        return self._size if self._size is not None else self.context.geometry.resize

    def process(self, frame):
        frame.image = resize_image(frame.image, self.resize, self.resize_type)
        return frame


class ImageCrop(Element):
    """The central cropHeight × cropWidth window (square: the line's imagesize) — `preprocess.center_crop`."""

    FACTORY = "mxpi_imagecrop"
    PROPS = {
        "cropHeight": Prop(required=True, parse=positive_int, help="the crop size in pixels (the line's imagesize)"),
        "cropWidth": Prop(required=True, parse=positive_int, help="the crop size in pixels (the line's imagesize)"),
        "cropType": Prop(default="center", parse=one_of("center")),
        "dataSource": Prop(),
    }

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        if parsed["cropWidth"] != parsed["cropHeight"]:
            raise where.error(f"must equal cropHeight ({parsed['cropHeight']}): lines use square crops.", "cropWidth")
        return parsed

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.size = props["cropHeight"]
        context.geometry.set_crop(self.size)  # a stretch without sizes stretches to the crop

    def process(self, frame):
        frame.image = center_crop(frame.image, self.size)
        return frame


class OpencvCenterCrop(ImageCrop):
    """MindX's mxpi_opencvcentercrop: the central cropHeight × cropWidth window, as mxpi_imagecrop here."""

    FACTORY = "mxpi_opencvcentercrop"
    PROPS = {
        "cropHeight": Prop(required=True, parse=positive_int, help="the crop size in pixels (the line's imagesize)"),
        "cropWidth": Prop(required=True, parse=positive_int, help="the crop size in pixels (the line's imagesize)"),
        "dataSource": Prop(),
    }


class ImageNormalize(Element):
    """(S, S, 3) uint8 RGB → (3, S, S) float32 with ImageNet mean / std — `preprocess.normalize`.

    MindX computes out = (pixel − alpha) / beta per channel in 0..255 units, with alpha 0,0,0 and
    beta 1,1,1 (no normalisation) when they are left out. The backbones need ImageNet's statistics,
    so both must be written out as ImageNet's; anything else is refused naming the prop.
    """

    FACTORY = "mxpi_imagenormalize"
    PROPS = {
        "alpha": Prop(default="0,0,0", parse=float_list(3), help="ImageNet mean 123.675,116.28,103.53"),
        "beta": Prop(default="1,1,1", parse=float_list(3), help="ImageNet std 58.395,57.12,57.375"),
        "dataType": Prop(default="auto", parse=one_of("FLOAT32", "auto")),
        "format": Prop(default="auto", parse=one_of("RGB888", "RGB", "auto"), help="RGB888 or auto (as decoded: RGB)"),
        "processType": Prop(default="1", parse=one_of("1"), help="1 (standardisation: (x − alpha) / beta)"),
        "dataSource": Prop(),
    }

    @classmethod
    def validate(cls, props, where: Where, options) -> dict:
        parsed = validate_props(cls.PROPS, props, where)
        for prop, expected in (("alpha", IMAGENET_MEAN * 255.0), ("beta", IMAGENET_STD * 255.0)):
            if not np.allclose(parsed[prop], expected, atol=1e-3):
                want = ",".join(f"{v:g}" for v in expected)
                given = f"is {props[prop]}" if prop in props else \
                    f"is not set, and MindX then uses {cls.PROPS[prop].default} (no normalisation)"
                raise where.error(f"{given}; it must be ImageNet's {want} (the backbones' input statistics).", prop)
        return parsed

    def process(self, frame):
        frame.meta[self.name] = normalize(frame.image)
        return frame
