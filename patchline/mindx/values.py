"""The SDK binding's data structures (StreamManagerApi.h, exposed to Python by SWIG): plain objects
with the SDK's attribute names, and the vectors its functions take and return. Text attributes
are bytes, as the binding gives them; str is accepted where an application passes one in."""

from __future__ import annotations


class _Vector(list):
    """A SWIG std::vector as Python sees it: a list that also has push_back, size, empty, clear."""

    def push_back(self, item) -> None:
        self.append(item)

    def pop_back(self):
        return self.pop()

    def size(self) -> int:
        return len(self)

    def empty(self) -> bool:
        return not self


class StringVector(_Vector):
    """std::vector<std::string>: metadata keys for GetResult / GetProtobuf, InitManager's arguments."""


class InProtobufVector(_Vector):
    """MxProtobufIn items for SendProtobuf."""


class OutProtobufVector(_Vector):
    """MxProtobufOut items GetProtobuf returns."""


class MetadataInputVector(_Vector):
    """MxMetadataInput items."""


class MetadataOutputVector(_Vector):
    """MxMetadataOutput items of a GetResult with keys."""


class RoiBoxVector(_Vector):
    """RoiBox items of an MxDataInput."""


class _Record:
    """Attributes with defaults, settable, shown by repr."""

    _fields: dict = {}

    def __init__(self, **values):
        for name, default in self._fields.items():
            setattr(self, name, values.pop(name, default() if callable(default) else default))
        if values:
            raise TypeError(f"{type(self).__name__} has no attribute {', '.join(values)}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r:.60}" for k in self._fields)
        return f"{type(self).__name__}({shown})"


class RoiBox(_Record):
    _fields = {"x0": 0.0, "y0": 0.0, "x1": 0.0, "y1": 0.0}


class MxDataInput(_Record):
    """What SendData sends: the encoded image (or any bytes) in `data`."""

    _fields = {"data": b"", "fragmentId": 0, "customParam": b"", "roiBoxs": RoiBoxVector}


class MxDataInputExt(_Record):
    _fields = {"data": b"", "fragmentId": 0, "customParam": b"", "mxpiFrameInfo": b"", "mxpiVisionInfo": b"",
               "roiBoxs": RoiBoxVector}


class MxBufferInput(_Record):
    _fields = {"data": b"", "mxpiFrameInfo": b"", "mxpiVisionInfo": b""}


class MxDataOutput(_Record):
    """GetResult(stream, index) / GetResultWithUniqueId: errorCode and data (the result, or the error text)."""

    _fields = {"errorCode": 0, "data": b""}


class MxProtobufIn(_Record):
    """One message for SendProtobuf: key (the metadata name, e.g. b"appsrc0"), type
    (e.g. b"MxTools.MxpiTensorPackageList") and the serialized message in protobuf."""

    _fields = {"key": b"", "type": b"", "protobuf": b""}


class MxProtobufOut(_Record):
    """One message of GetProtobuf: errorCode, messageName (its key) and messageBuf (serialized)."""

    _fields = {"errorCode": 0, "messageName": b"", "messageBuf": b""}


class MxMetadataInput(_Record):
    _fields = {"dataSource": b"", "dataType": b"", "serializedMetadata": b""}


class MxMetadataOutput(_Record):
    """One key of a GetResult with keys: dataType (the message's name, e.g. b"MxpiTensorPackageList") and
    serializedMetadata; errorCode / errorMsg when the key is not in the result."""

    _fields = {"errorCode": 0, "errorMsg": b"", "dataType": b"", "serializedMetadata": b""}


class MxBufferOutput(_Record):
    _fields = {"errorCode": 0, "errorMsg": b"", "data": b""}


class MxBufferAndMetadataOutput(_Record):
    """GetResult(stream, b"appsink0", keys): errorCode, errorMsg, bufferOutput (MxBufferOutput) and
    metadataVec (one MxMetadataOutput per key asked for)."""

    _fields = {"errorCode": 0, "errorMsg": b"", "bufferOutput": MxBufferOutput, "metadataVec": MetadataOutputVector}


def as_text(value) -> str:
    """A name the application passed (bytes as the binding wants, or str)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return bytes(value or b"")
