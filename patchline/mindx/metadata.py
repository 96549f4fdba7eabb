"""A frame's results as the SDK hands them to a host: each element's output as its MxTools message
(tensors as MxpiTensorPackageList, the PatchCore verdict as MxpiClassList, the frame info as
MxpiFrameInfo), and mxpi_dataserialize's JSON as the SDK writes it ({"MxpiClass": [...], ...})."""

from __future__ import annotations

import json

import numpy as np
from google.protobuf import json_format

from patchline.mindx import mxpi_types as mx

# MxBase TensorDataType codes (tensorDataType) ↔ numpy
DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 6: np.int16, 7: np.uint16,
          8: np.uint32, 9: np.int64, 10: np.uint64, 11: np.float64, 12: np.bool_}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}
EXTERNAL = "MxstFrameExternalInfo"  # frame.meta key of what the host API keeps with a frame (SDK name)


def tensor_list(arrays: list[np.ndarray], source: str) -> "mx.MxpiTensorPackageList":
    """One MxpiTensorPackage holding each array as an MxpiTensor (shape, bytes, data type), in host memory."""
    message = mx.MxpiTensorPackageList()
    package = message.tensorPackageVec.add()
    package.headerVec.add(dataSource=source, memberId=0)
    for array in arrays:
        array = np.ascontiguousarray(array)
        tensor = package.tensorVec.add(tensorDataSize=array.nbytes, tensorDataType=CODES.get(array.dtype, 0),
                                       memType=mx.MXPI_MEMORY_HOST)
        tensor.tensorShape.extend(int(d) for d in array.shape)
        tensor.dataStr = array.tobytes()
    return message


def tensors_of(message) -> list[np.ndarray]:
    """The arrays of an MxpiTensorPackageList's first package; ValueError when a size does not match."""
    arrays = []
    for package in message.tensorPackageVec[:1]:
        for tensor in package.tensorVec:
            dtype = DTYPES.get(tensor.tensorDataType)
            if dtype is None:
                raise ValueError(f"tensorDataType {tensor.tensorDataType} is not one patchline reads")
            shape = tuple(tensor.tensorShape)
            if int(np.prod(shape)) * np.dtype(dtype).itemsize != len(tensor.dataStr):
                raise ValueError(f"a tensor of shape {list(shape)} needs {int(np.prod(shape)) * np.dtype(dtype).itemsize} "
                                 f"bytes, dataStr has {len(tensor.dataStr)}")
            arrays.append(np.frombuffer(tensor.dataStr, dtype=dtype).reshape(shape))
    return arrays


def class_list(verdict: dict, source: str) -> "mx.MxpiClassList":
    """The PatchCore verdict as the SDK's class post-processors report: one class, defect (1) or good (0),
    its confidence the anomaly score (float32, as the SDK's field)."""
    message = mx.MxpiClassList()
    defect = verdict.get("verdict") == "defect"
    score = verdict.get("score")
    message.classVec.add(classId=1 if defect else 0, className=str(verdict.get("verdict", "")),
                         confidence=float(score) if score is not None else 0.0).headerVec.add(dataSource=source)
    return message


PIXEL_FORMATS = {3: 12, 2: 0}  # channels → MxBase PixelFormat: RGB_888 (12), YUV_400 (0, gray)


def vision_list(frame, factory: str, source: str):
    """An image element's MxpiVisionList: the decoder's gives the decoded frame's size (its pixels stay
    in the stream, as device memory does on an NPU); the crop's gives the working image's size and its
    pixels (RGB or gray uint8, row-major, in host memory). None when the frame has no such image."""
    message = mx.MxpiVisionList()
    if factory == "mxpi_imagedecoder":
        if frame.frame_shape is None:
            return None
        height, width = frame.frame_shape[:2]
        channels, data = 3, None
    else:
        if frame.image is None:
            return None
        height, width = frame.image.shape[:2]
        channels, data = (frame.image.shape[2] if frame.image.ndim == 3 else 1), np.ascontiguousarray(frame.image)
    vision = message.visionVec.add()
    vision.headerVec.add(dataSource=source, memberId=0)
    vision.visionInfo.format = PIXEL_FORMATS.get(channels, 0)
    vision.visionInfo.width, vision.visionInfo.height = int(width), int(height)
    vision.visionInfo.widthAligned, vision.visionInfo.heightAligned = int(width), int(height)
    vision.visionData.memType = mx.MXPI_MEMORY_HOST
    if data is not None:
        vision.visionData.dataStr = data.tobytes()
        vision.visionData.dataSize = data.nbytes
    return message


def image_of(message) -> np.ndarray | None:
    """The (H, W, 3) RGB or (H, W) gray uint8 pixels of an MxpiVisionList's first image held in host
    memory; None when it holds none (pixels left in device memory, or a size that does not match)."""
    if not message.visionVec:
        return None
    vision = message.visionVec[0]
    info, data = vision.visionInfo, vision.visionData.dataStr
    channels = 1 if info.format == 0 else 3
    if not data or len(data) != info.height * info.width * channels:
        return None
    image = np.frombuffer(data, dtype=np.uint8).reshape(info.height, info.width, channels)
    return image[:, :, 0] if channels == 1 else image


def frame_info(frame) -> "mx.MxpiFrameInfo":
    return mx.MxpiFrameInfo(channelId=int(frame.channel), frameId=int(frame.frame_id), isEos=False)


def element_message(frame, key: str, factory: str | None, upstream: str | None):
    """The message the SDK would hold under metadata `key` for this frame; None when there is none."""
    sent = frame.meta.get(EXTERNAL, {}).get("protobuf", {})
    if key in sent:
        return sent[key]
    if key == "ReservedFrameInfo":
        return frame_info(frame)
    if factory in ("mxpi_imagedecoder", "mxpi_imagecrop"):
        return vision_list(frame, factory, upstream or key)
    value = frame.meta.get(key)
    if value is None:
        return None
    if factory == "mxpi_tensorinfer":
        return tensor_list([frame.tensors[name] for name in value], upstream or key)
    if factory == "mxpi_classpostprocessor" and isinstance(value, dict):
        return class_list(value, upstream or key)
    if isinstance(value, np.ndarray):  # an image op's array (the normalized tensor)
        return tensor_list([value[None] if value.ndim == 3 else value], upstream or key)
    return None


def _repeated(field) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; older ones have only `label`
    return bool(repeated) if repeated is not None else field.label == field.LABEL_REPEATED


def _as_dict(message) -> dict:
    try:
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5 names the option differently
        return json_format.MessageToDict(message, including_default_value_fields=True)


def serialized(messages: dict) -> bytes:
    """mxpi_dataserialize's JSON for {key: message}: each list message's items under their type's name
    ({"MxpiClass": [...]}), other messages under theirs, without the header vectors (the SDK's
    eraseHeaderVecFlag default)."""
    out: dict = {}
    for message in messages.values():
        if message is None:
            continue
        fields = message.DESCRIPTOR.fields
        if len(fields) == 1 and fields[0].message_type is not None and _repeated(fields[0]):
            items = [_as_dict(item) for item in getattr(message, fields[0].name)]
            for item in items:
                item.pop("headerVec", None)
            out.setdefault(fields[0].message_type.name, []).extend(items)
        else:
            out[message.DESCRIPTOR.name] = _as_dict(message)
    return json.dumps(out, separators=(",", ":")).encode()
