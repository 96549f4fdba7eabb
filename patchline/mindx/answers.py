"""What a host gets back for a frame that reached an appsink, in the SDK binding's result objects."""

from __future__ import annotations

from patchline.mindx import codes
from patchline.mindx.metadata import element_message, serialized
from patchline.mindx.values import (MetadataOutputVector, MxBufferAndMetadataOutput, MxBufferOutput,
                                    MxDataOutput, MxMetadataOutput, MxProtobufOut, OutProtobufVector, as_text)
from patchline.pipeline.config import StreamConfig


def message_of(cfg: StreamConfig, frame, key: str):
    """The MxTools message of metadata `key` for the frame, or None."""
    el = cfg.elements.get(key)
    factory = el.factory if el is not None else None
    upstream = (el.parsed or {}).get("dataSource") if el is not None else None
    return element_message(frame, key, factory, upstream if isinstance(upstream, str) else None)


def buffer_of(cfg: StreamConfig, frame) -> bytes:
    """The appsink's buffer: mxpi_dataserialize's JSON when the stream has one, else the data sent."""
    serializer = next((cfg.elements[n] for n in cfg.order if cfg.elements[n].factory == "mxpi_dataserialize"), None)
    if serializer is None:
        return frame.data or b""
    keys = serializer.parsed["outputDataKeys"]
    return serialized({key: message_of(cfg, frame, key) for key in keys})


def data_output(cfg: StreamConfig, frame, timeout_ms: int) -> MxDataOutput:
    """GetResult(stream, index) / GetResultWithUniqueId's answer; a timeout is the SDK's internal error."""
    if frame is None:
        return MxDataOutput(errorCode=codes.APP_ERR_COMM_INNER, data=codes.error_info(codes.APP_ERR_COMM_INNER).encode())
    if frame.error is not None:
        return MxDataOutput(errorCode=codes.APP_ERR_COMM_FAILURE, data=frame.error.encode())
    return MxDataOutput(errorCode=codes.APP_ERR_OK, data=buffer_of(cfg, frame))


def keyed_output(cfg: StreamConfig, frame, keys, timeout_ms: int) -> MxBufferAndMetadataOutput:
    """GetResult(stream, b"appsinkN", keys)'s answer: the buffer and one MxMetadataOutput per key."""
    if frame is None:
        text = f"{codes.error_info(codes.APP_ERR_COMM_FAILURE)}Get empty result, or exceed the time limit({timeout_ms})."
        return MxBufferAndMetadataOutput(errorCode=codes.APP_ERR_COMM_FAILURE, errorMsg=text.encode())
    if frame.error is not None:
        return MxBufferAndMetadataOutput(errorCode=codes.APP_ERR_COMM_FAILURE, errorMsg=frame.error.encode())
    metadata = MetadataOutputVector()
    for key in map(as_text, keys):
        message = message_of(cfg, frame, key)
        if message is None:
            code = codes.APP_ERR_PLUGIN_TOOLKIT_METADATA_KEY_NOEXIST
            metadata.append(MxMetadataOutput(errorCode=code,
                                             errorMsg=f"{codes.error_info(code)}DataSource({key}) does not exist.".encode()))
        else:
            metadata.append(MxMetadataOutput(dataType=message.DESCRIPTOR.name.encode(),
                                             serializedMetadata=message.SerializeToString()))
    return MxBufferAndMetadataOutput(bufferOutput=MxBufferOutput(data=buffer_of(cfg, frame)), metadataVec=metadata)


def protobuf_output(cfg: StreamConfig, frame, keys) -> OutProtobufVector:
    """GetProtobuf's answer: one MxProtobufOut per key the frame has (keys it lacks are left out, as the SDK does)."""
    out = OutProtobufVector()
    if frame is None:
        return out
    code = codes.APP_ERR_COMM_FAILURE if frame.error is not None else codes.APP_ERR_OK
    for key in map(as_text, keys):
        message = message_of(cfg, frame, key)
        if message is not None:
            out.append(MxProtobufOut(errorCode=code, messageName=key.encode(), messageBuf=message.SerializeToString()))
    return out
