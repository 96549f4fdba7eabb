"""One stream of `patchline run --host-api`: images sent through StreamManagerApi, judged on the host.

The host reads the folder's files in name order (as the folder source does), sends each one with
SendData to the device stream's appsrc0, and takes each result with GetResult(stream, b"appsink0",
keys): the models' MxpiTensorPackageList (the layer features), the decoder's MxpiVisionList (the
frame's size, for regions in frame pixels) and the crop's (its pixels, for defect snapshots). The
PatchCore post-process then runs here, with the same element `patchline run` builds, so a frame's
verdict is the one the runner gives. At most IN_FLIGHT frames are between SendData and GetResult.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from threadpoolctl import threadpool_limits

from patchline.app.host_plan import APPSINK, HostPlan
from patchline.core.image_file import read_image_bytes
from patchline.errors import PatchlineError
from patchline.mindx.metadata import image_of, tensors_of
from patchline.pipeline.frame import Frame

log = logging.getLogger("patchline.app.run")
IN_FLIGHT = 8
RESULT_TIMEOUT_MS = 60_000  # a result this late means the device stream is stuck: the run stops


def sdk_binding() -> SimpleNamespace:
    """The host API's classes: the MindX SDK's (StreamManagerApi, MxpiDataType_pb2) where installed,
    patchline's otherwise. Fields: name, StreamManagerApi, MxDataInput, StringVector, TensorList, VisionList."""
    from patchline.mindx import sdk_available

    if sdk_available():
        import MxpiDataType_pb2 as messages  # the SDK's
        from StreamManagerApi import MxDataInput, StreamManagerApi, StringVector
        name = "the MindX SDK"
    else:
        from patchline.mindx import mxpi_types as messages
        from patchline.mindx.api import StreamManagerApi
        from patchline.mindx.values import MxDataInput, StringVector
        name = "patchline.mindx (no MindX SDK installed)"
    return SimpleNamespace(name=name, StreamManagerApi=StreamManagerApi, MxDataInput=MxDataInput,
                           StringVector=StringVector, TensorList=messages.MxpiTensorPackageList,
                           VisionList=messages.MxpiVisionList)


@dataclass(frozen=True)
class Sent:
    """A frame between SendData and GetResult (error: why it was never sent)."""

    frame_id: int
    name: str
    timestamp: float
    started: float
    error: str | None = None


class HostStream:
    """Feeds one folder into a created device stream and turns each result into a verdict payload.

    plan: the split (host_plan.py); outputs: model element → its output names, in tensor order;
    post: the PatchCore element (process_batch(frames) → payloads); on_result(payload) per frame.
    """

    def __init__(self, binding, api, plan: HostPlan, outputs: dict, post, camera: str, on_result):
        self.binding, self.api, self.plan, self.outputs = binding, api, plan, outputs
        self.post, self.camera, self.on_result = post, camera, on_result
        self.pending: queue.Queue = queue.Queue(maxsize=IN_FLIGHT)
        self.keys = binding.StringVector()
        for key in plan.keys:
            self.keys.push_back(key)
        self.sent = self.results = 0
        self.fatal: str | None = None

    def feed(self, paths: list[Path], stop: threading.Event, loop: bool = False, fps: float | None = None) -> None:
        """Send each file (in order; over and over when loop; one every 1 / fps s when fps) until done or stop."""
        interval, due, frame_id = (1.0 / fps if fps else 0.0), time.perf_counter(), 0
        try:
            while not stop.is_set():
                for path in paths:
                    if interval:
                        if stop.wait(max(0.0, due - time.perf_counter())):
                            return
                        due = max(due, time.perf_counter()) + interval
                    if stop.is_set():
                        return
                    self.pending.put(self._send(frame_id, path))
                    frame_id += 1
                if not loop:
                    return
        finally:
            self.pending.put(None)

    def _send(self, frame_id: int, path: Path) -> Sent:
        timestamp, started = time.time(), time.perf_counter()
        try:
            data = read_image_bytes(path, "frame")
        except PatchlineError as exc:
            return Sent(frame_id, path.name, timestamp, started, str(exc).replace(str(path), path.name))
        data_input = self.binding.MxDataInput()
        data_input.data = data
        code = self.api.SendData(self.plan.stream.encode(), 0, data_input)
        if code != 0:
            return Sent(frame_id, path.name, timestamp, started, f"SendData returned {code}")
        self.sent += 1
        return Sent(frame_id, path.name, timestamp, started)

    def collect(self, ready: queue.Queue) -> None:
        """Take every sent frame's result in order (GetResult) into `ready`; None after the last."""
        try:
            while (sent := self.pending.get()) is not None:
                frame = Frame(self.plan.stream, sent.frame_id, sent.name, sent.timestamp, started=sent.started,
                              camera=self.camera, error=sent.error)
                if sent.error is None:
                    if self.fatal is None:
                        self._fill(frame)
                    else:
                        frame.error = f"not judged: {self.fatal}"
                ready.put(frame)
        finally:
            ready.put(None)

    def drain(self) -> None:
        """Judge the results as they come (frames waiting together in one batch, as the runner's post-process
        takes them), hand each payload on in order; returns after the last. faiss and BLAS run in this
        thread only, as in the runner's stages."""
        ready: queue.Queue = queue.Queue(maxsize=IN_FLIGHT)
        collector = threading.Thread(target=self.collect, args=(ready,), name="host-api-results", daemon=True)
        collector.start()
        limit = max(1, int(getattr(self.post, "max_batch", 1)))
        with threadpool_limits(limits=1):
            while True:
                batch = [ready.get()]
                while batch[-1] is not None and len(batch) < limit and not ready.empty():
                    batch.append(ready.get())
                frames = [f for f in batch if f is not None]
                if frames:
                    for payload in self.post.process_batch(frames):
                        self.results += 1
                        self.on_result(payload)
                if batch[-1] is None:
                    break
        collector.join()

    def _fill(self, frame: Frame) -> None:
        """Put the frame's result (tensors, size, crop) into it, or its error."""
        out = self.api.GetResult(self.plan.stream.encode(), APPSINK.encode(), self.keys, RESULT_TIMEOUT_MS)
        if out.errorCode != 0:
            text = bytes(out.errorMsg).decode("utf-8", "replace") or f"GetResult returned {out.errorCode}"
            frame.error = text.replace(f"{self.plan.source} ", f"{frame.source} ", 1)  # the stream knows no file name
            if b"exceed the time limit" in bytes(out.errorMsg):
                self.fatal = f"no result from stream '{self.plan.stream}' within {RESULT_TIMEOUT_MS / 1000:.0f} s"
            return
        items = {key.decode(): item for key, item in zip(self.plan.keys, out.metadataVec)}
        try:
            for model in self.plan.models:
                message = self._parsed(items.get(model), self.binding.TensorList, model)
                frame.tensors.update(zip(self.outputs[model], tensors_of(message)))
            if self.plan.decoder:
                info = self._parsed(items.get(self.plan.decoder), self.binding.VisionList, self.plan.decoder)
                frame.frame_shape = (info.visionVec[0].visionInfo.height, info.visionVec[0].visionInfo.width)
            if self.plan.crop:
                frame.image = image_of(self._parsed(items.get(self.plan.crop), self.binding.VisionList, self.plan.crop))
        except (ValueError, IndexError) as exc:
            frame.error = f"result of stream '{self.plan.stream}': {exc}"

    @staticmethod
    def _parsed(item, cls, key: str):
        """The message of one metadata item; ValueError when the stream did not give it."""
        if item is None or item.errorCode != 0:
            text = bytes(item.errorMsg).decode("utf-8", "replace") if item is not None else "missing"
            raise ValueError(f"metadata {key}: {text}")
        message = cls()
        message.ParseFromString(bytes(item.serializedMetadata))
        return message
