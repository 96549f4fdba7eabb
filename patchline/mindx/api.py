"""StreamManagerApi, the MindX SDK's Python host API, on patchline's runner.

The SDK's names, arguments, return codes and result objects (mxStream's StreamManagerApi.h and its
Python binding): InitManager, CreateMultipleStreams(FromFile), SendData / SendDataWithUniqueId /
SendProtobuf, GetResult (by index, or by appsink name with metadata keys), GetResultWithUniqueId,
GetProtobuf, StopStream, DestroyAllStreams. Failures are return codes (and an error log line),
never exceptions, as with the SDK. Streams run patchline's elements on the CPU.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from patchline.errors import ConfigError, PatchlineError, problems_of
from patchline.mindx import codes
from patchline.mindx.answers import data_output, keyed_output, protobuf_output
from patchline.mindx.host import HostStream
from patchline.mindx.metadata import tensors_of
from patchline.mindx.mxpi_types import message_class
from patchline.mindx.values import (MxBufferAndMetadataOutput, MxDataOutput, MxProtobufOut, OutProtobufVector,
                                    as_bytes, as_text)
from patchline.pipeline.config import parse_pipeline
from patchline.pipeline.streams import model_parallelism

log = logging.getLogger("patchline.mindx")
DELAY_TIME = 3000  # the SDK's default GetResult timeout, ms
MAX_CONFIG_BYTES = 100 * 1024 * 1024


def _inputs(protobuf_vec) -> tuple[dict, dict, bytes | None]:
    """SendProtobuf's messages → (metadata key → message, key → array for a model, encoded image bytes);
    ValueError naming the item that cannot be read."""
    messages, arrays, data = {}, {}, None
    for i, item in enumerate(protobuf_vec):
        key, type_name = as_text(item.key), as_text(item.type)
        cls = message_class(type_name)
        if cls is None:
            raise ValueError(f"protobufVec[{i}].type {type_name!r} is not an MxTools message")
        message = cls()
        try:
            message.ParseFromString(as_bytes(item.protobuf))
        except Exception as exc:  # a DecodeError: the bytes are not that message
            raise ValueError(f"protobufVec[{i}] is not a serialized {type_name}: {exc}") from None
        messages[key] = message
        if cls.DESCRIPTOR.name == "MxpiTensorPackageList":
            tensors = tensors_of(message)
            if tensors:
                arrays[key] = tensors[0]
        elif cls.DESCRIPTOR.name == "MxpiVisionList" and message.visionVec:
            data = message.visionVec[0].visionData.dataStr
    return messages, arrays, data


class StreamManagerApi:
    """The SDK's stream manager: create streams from pipeline JSON, send them data, get results."""

    def __init__(self):
        self._streams: dict[str, HostStream] = {}
        self._initialized = False
        self._lock = threading.Lock()

    def InitManager(self, argStrings=None) -> int:  # noqa: N802 - the SDK's names
        self._initialized = True
        return codes.APP_ERR_OK

    # ---- streams

    def CreateMultipleStreams(self, streamsConfig) -> int:  # noqa: N802
        if not self._initialized:
            log.error("The initialization is not performed. Call the InitManager method first.")
            return codes.APP_PYTHON_INIT_ERROR
        text = as_bytes(streamsConfig)
        if not text or len(text) > MAX_CONFIG_BYTES:
            log.error("The streamsConfig is empty or too large.%s", codes.error_info(codes.APP_ERR_COMM_INVALID_PARAM))
            return codes.APP_ERR_COMM_INVALID_PARAM
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            log.error("pipeline is not a valid json. (%s)%s", exc, codes.error_info(codes.APP_ERR_STREAM_INVALID_CONFIG))
            return codes.APP_ERR_STREAM_INVALID_CONFIG
        return self._create(data)

    def CreateMultipleStreamsFromFile(self, streamsFilePath) -> int:  # noqa: N802
        path = Path(as_text(streamsFilePath))
        if not path.is_file():
            log.error("File is not exists.%s", codes.error_info(codes.APP_ERR_COMM_NO_EXIST))
            return codes.APP_ERR_COMM_NO_EXIST
        return self.CreateMultipleStreams(path.read_bytes())

    def _create(self, data) -> int:
        if not isinstance(data, dict) or not data:
            log.error("Json value is empty or not an valid object.%s", codes.error_info(codes.APP_ERR_STREAM_INVALID_CONFIG))
            return codes.APP_ERR_STREAM_INVALID_CONFIG
        existing = [name for name in data if name in self._streams]
        if existing:
            log.warning("%sstream(%s) already exist.", codes.error_info(codes.APP_ERR_STREAM_EXIST), existing[0])
            return codes.APP_ERR_STREAM_EXIST
        try:
            config = parse_pipeline(data, "<StreamManagerApi>")
        except ConfigError as exc:
            for problem in problems_of(exc):
                log.error("%s", problem)
            log.error("Invalid stream config.%s", codes.error_info(codes.APP_ERR_STREAM_INVALID_CONFIG))
            return codes.APP_ERR_STREAM_INVALID_CONFIG
        options = {"ort_threads": None}
        options["model_workers"], options["ort_threads"] = model_parallelism(config)
        built: dict[str, HostStream] = {}
        try:
            for name, cfg in config.streams.items():
                built[name] = HostStream(cfg, options)
        except (PatchlineError, OSError) as exc:
            for stream in built.values():
                stream.close()
            log.error("Failed to create stream: %s%s", exc, codes.error_info(codes.APP_ERR_STREAM_CREATE_FAILED))
            return codes.APP_ERR_STREAM_CREATE_FAILED
        self._streams.update(built)
        return codes.APP_ERR_OK

    def StopStream(self, streamName) -> int:  # noqa: N802
        stream = self._streams.pop(as_text(streamName), None)
        if stream is None:
            log.error("Stream(%s) not exist.%s", as_text(streamName), codes.error_info(codes.APP_ERR_STREAM_NOT_EXIST))
            return codes.APP_ERR_STREAM_NOT_EXIST
        stream.close()
        return codes.APP_ERR_OK

    def DestroyAllStreams(self) -> int:  # noqa: N802
        if not self._initialized:
            return codes.APP_PYTHON_INIT_ERROR
        while self._streams:
            self._streams.popitem()[1].close()
        return codes.APP_ERR_OK

    # ---- sending

    def _target(self, streamName, plugin, mode: str) -> tuple[HostStream | None, str | None, int]:
        """(stream, appsrc name, code) for a send; code != 0 when the call must fail."""
        if not self._initialized:
            return None, None, codes.APP_PYTHON_INIT_ERROR
        name = as_text(streamName)
        stream = self._streams.get(name)
        if stream is None:
            log.error("Stream(%s) not exist.%s", name, codes.error_info(codes.APP_ERR_STREAM_NOT_EXIST))
            return None, None, codes.APP_ERR_STREAM_NOT_EXIST
        if isinstance(plugin, int) and plugin < 0:
            log.error("The inPluginId cannot be a negative number.%s", codes.error_info(codes.APP_ERR_COMM_INVALID_PARAM))
            return None, None, codes.APP_ERR_COMM_INVALID_PARAM
        source = stream.source_name(plugin if isinstance(plugin, int) else as_text(plugin))
        if source is None:
            log.error("Fail to push buffer, inPluginId is out of range or dataBuffer.dataPtr is null.%s",
                      codes.error_info(codes.APP_ERR_STREAM_INVALID_LINK))
            return None, None, codes.APP_ERR_STREAM_INVALID_LINK
        with self._lock:
            if stream.mode not in (None, mode):
                log.error("cannot send data with this function, use the same function as last time.%s",
                          codes.error_info(codes.APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED))
                return None, None, codes.APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED
            stream.mode = mode
        return stream, source, codes.APP_ERR_OK

    def _send(self, streamName, plugin, data: bytes | None, mode: str, protobuf_vec=None) -> tuple[int, int]:
        """(code, unique id) of one send."""
        stream, source, code = self._target(streamName, plugin, mode)
        if code:
            return code, -1
        messages, arrays = {}, {}
        if protobuf_vec is not None:
            try:
                messages, arrays, image = _inputs(protobuf_vec)
            except ValueError as exc:
                log.error("StreamManagerApi SendProtobufComm failed: %s%s", exc, codes.error_info(codes.APP_ERR_COMM_FAILURE))
                return codes.APP_ERR_COMM_FAILURE, -1
            data = image if data is None else data
        elif not data:
            log.error("Fail to push buffer, inPluginId is out of range or dataBuffer.dataPtr is null.%s",
                      codes.error_info(codes.APP_ERR_STREAM_INVALID_LINK))
            return codes.APP_ERR_STREAM_INVALID_LINK, -1
        return codes.APP_ERR_OK, stream.send(source, data, messages, arrays)

    def SendData(self, streamName, plugin, dataInput, dataBuffer=None) -> int:  # noqa: N802
        """SendData(stream, inPluginId or b"appsrcN", MxDataInput), or the (stream, element,
        MetadataInputVector, MxBufferInput) form whose metadata travels as SendProtobuf's does."""
        if dataBuffer is not None:
            vec = [type("In", (), {"key": m.dataSource, "type": m.dataType, "protobuf": m.serializedMetadata})
                   for m in dataInput]
            return self._send(streamName, plugin, as_bytes(dataBuffer.data) or None, "normal", vec)[0]
        return self._send(streamName, plugin, as_bytes(dataInput.data), "normal")[0]

    def SendDataWithUniqueId(self, streamName, plugin, dataInput) -> int:  # noqa: N802
        code, unique_id = self._send(streamName, plugin, as_bytes(dataInput.data), "unique")
        return unique_id if code == codes.APP_ERR_OK else codes.APP_PYTHON_INIT_ERROR

    def SendProtobuf(self, streamName, plugin, protobufVec) -> int:  # noqa: N802
        return self._send(streamName, plugin, None, "normal", list(protobufVec))[0]

    # ---- results

    def _stream_for_get(self, streamName, mode: str) -> tuple[HostStream | None, int]:
        name = as_text(streamName)
        stream = self._streams.get(name) if self._initialized else None
        if not self._initialized:
            return None, codes.APP_PYTHON_INIT_ERROR
        if stream is None:
            log.error("Stream(%s) not exist.%s", name, codes.error_info(codes.APP_ERR_STREAM_NOT_EXIST))
            return None, codes.APP_ERR_STREAM_NOT_EXIST
        if (stream.mode or "normal") != mode:
            log.error("cannot get data with this function, use the other matched with the send function.%s",
                      codes.error_info(codes.APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED))
            return None, codes.APP_ERR_STREAM_TRANS_MODE_NOT_MATCHED
        return stream, codes.APP_ERR_OK

    def GetResult(self, streamName, plugin, keysOrTimeout=None, msTimeOut: int = DELAY_TIME):  # noqa: N802
        """GetResult(stream, outPluginId[, msTimeOut]) → MxDataOutput, or GetResult(stream, b"appsinkN",
        keys[, msTimeOut]) → MxBufferAndMetadataOutput (the buffer and one metadata item per key)."""
        keyed = not isinstance(plugin, int)
        timeout = msTimeOut if keyed or keysOrTimeout is None else int(keysOrTimeout)
        stream, code = self._stream_for_get(streamName, "normal")
        if code:
            text = f"Stream({as_text(streamName)}) not exist." if code == codes.APP_ERR_STREAM_NOT_EXIST \
                else codes.error_info(code)
            return MxBufferAndMetadataOutput(errorCode=code, errorMsg=text.encode()) if keyed \
                else MxDataOutput(errorCode=code, data=codes.error_info(code).encode())
        if keyed:
            sink = as_text(plugin)
            if sink not in stream.sinks:
                text = f"ElementName({sink}) is not a name of output element."
                log.error("%s%s", text, codes.error_info(codes.APP_ERR_STREAM_ELEMENT_INVALID))
                return MxBufferAndMetadataOutput(errorCode=codes.APP_ERR_STREAM_ELEMENT_INVALID, errorMsg=text.encode())
            return keyed_output(stream.cfg, stream.take(sink, timeout), keysOrTimeout or [], timeout)
        if plugin < 0 or plugin >= len(stream.sinks):
            code = codes.APP_ERR_COMM_INVALID_PARAM if plugin < 0 else codes.APP_ERR_COMM_INNER
            log.error("outPluginId %d is not an output plugin.%s", plugin, codes.error_info(code))
            return MxDataOutput(errorCode=code, data=codes.error_info(code).encode())
        return data_output(stream.cfg, stream.take(stream.sinks[plugin], timeout), timeout)

    def GetResultWithUniqueId(self, streamName, uniqueId: int, timeOutInMs: int = DELAY_TIME) -> MxDataOutput:  # noqa: N802
        stream, code = self._stream_for_get(streamName, "unique")
        if code:
            return MxDataOutput(errorCode=code, data=codes.error_info(code).encode())
        return data_output(stream.cfg, stream.take_id(int(uniqueId), int(timeOutInMs)), int(timeOutInMs))

    def GetProtobuf(self, streamName, outPluginId: int, keyVec) -> OutProtobufVector:  # noqa: N802
        """One MxProtobufOut per key of the next result of appsink outPluginId (empty when there is none)."""
        stream, code = self._stream_for_get(streamName, "normal")
        if code:
            return OutProtobufVector([MxProtobufOut(errorCode=code)])
        if not 0 <= outPluginId < len(stream.sinks):
            log.error("GetProtobuf outPluginId is not exist. outPluginId = %d.%s", outPluginId,
                      codes.error_info(codes.APP_ERR_COMM_FAILURE))
            return OutProtobufVector()
        return protobuf_output(stream.cfg, stream.take(stream.sinks[outPluginId], 24 * 3600 * 1000), keyVec)
