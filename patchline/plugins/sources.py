"""Where frames come from: appsrc (fed by the host, e.g. from a folder) and mxpi_rtspsrc (a camera).

A source has `frames(stop_event)` instead of `process`: it yields Frames until it is done (a
folder) or the event is set (a camera).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator

from patchline.core.image_file import read_image_bytes
from patchline.core.preprocess import list_images
from patchline.errors import PatchlineError
from patchline.pipeline.elements import Element, Prop, non_negative_int, positive_int
from patchline.pipeline.frame import Frame

log = logging.getLogger(__name__)


class AppSrc(Element):
    """A source a host feeds (MindX appsrc). `patchline run` replaces it with the --source folder or
    camera; a host application (patchline.mindx's StreamManagerApi: stream option `host_fed`) puts
    Frames into `feed` and None to end the stream. Without a host a stream reading it has nothing to read."""

    FACTORY = "appsrc"
    PROPS = {"blocksize": Prop(parse=positive_int, ignored="frames are read whole")}
    is_source = True

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.feed: queue.Queue = queue.Queue(maxsize=64)  # the host waits when the stream is this far behind

    @property
    def channel(self) -> int:
        """appsrc<N> feeds channel N (MindX: SendData(streamName, inPluginId N, …))."""
        return int(self.name[len("appsrc"):] or 0)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        if not self.context.options.get("host_fed"):
            raise PatchlineError(f"stream '{self.context.stream}' reads {self.name}: give it frames with --source "
                                 f"FOLDER or --source rtsp://….")
        while not stop.is_set():
            try:
                frame = self.feed.get(timeout=0.2)
            except queue.Empty:
                continue
            if frame is None:
                return
            yield frame


class FolderSource(Element):
    """Frames from the image files of a folder, in name order, each exactly once (or over and over
    with the stream option `loop_folder`, e.g. a soak test); never drops. By default a file is read
    as soon as the stream takes the previous one; with `patchline run --fps N` (stream option
    `folder_fps`) one file is read every 1/N s, at a camera's pace (a frame the stream is not ready
    for waits, and later files are not read early to catch up)."""

    FACTORY = "folder"
    is_source = True

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        self.channel = int(props.get("channelId") or 0)
        self.folder = Path(props["folder"])
        if not self.folder.is_dir():
            raise PatchlineError(f"source folder {self.folder} does not exist or is not a folder.")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise PatchlineError(f"source folder {self.folder} holds no images (.png, .jpg, .bmp, .tif).")

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        loop = bool(self.context.options.get("loop_folder"))
        fps = self.context.options.get("folder_fps")
        interval = 1.0 / float(fps) if fps else 0.0
        due = time.perf_counter()  # paced: when the next file is read
        i = 0
        while True:
            for path in self.paths:
                if interval:
                    wait = due - time.perf_counter()
                    if wait > 0 and stop.wait(wait):
                        return
                    due = max(due, time.perf_counter()) + interval  # reads >= 1/N s apart: no burst after a wait
                if stop.is_set():
                    return
                frame = Frame(self.context.stream, i, path.name, time.time())
                try:
                    frame.data = read_image_bytes(path, "frame")  # regular files of bounded size only
                except PatchlineError as exc:
                    frame.error = str(exc).replace(str(path), path.name)  # the verdict names the file only
                i += 1
                yield frame
            if not loop:
                return


def rtsp_url(text: str) -> str:
    """An rtsp:// or rtsps:// URL with a host (ValueError otherwise: an http:// camera would be retried forever)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError("it is not a URL") from None
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise ValueError("it must be an rtsp://host[:port]/path (or rtsps://) URL")
    return text


class RtspSrc(Element):
    """A live RTSP camera (newest frame wins, reconnect with back-off) — wraps `plugins.camera.RtspCamera`."""

    FACTORY = "mxpi_rtspsrc"
    PROPS = {
        "rtspUrl": Prop(required=True, parse=rtsp_url, help="rtsp://host:port/path"),
        "channelId": Prop(default="0", parse=non_negative_int),
    }
    is_source = True
    live = True

    def __init__(self, name, props, context):
        super().__init__(name, props, context)
        from patchline.urls import redacted_url
        from patchline.plugins.camera import RtspCamera

        self.url = props["rtspUrl"]
        self.channel = int(props.get("channelId") or 0)
        self.public_url = redacted_url(self.url)
        self.camera = RtspCamera(self.url, on_status=self._status)

    @property
    def dropped(self) -> int:
        """Frames the camera delivered that were replaced by a newer one before the stream took them."""
        return self.camera.dropped

    def _status(self, state: str, info: dict) -> None:
        self.context.on_status(getattr(self, "camera_name", self.context.camera), state, **info)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for rgb, timestamp, seq in self.camera.frames(stop):
            yield Frame(self.context.stream, int(seq), self.public_url, float(timestamp), image=rgb,
                        frame_shape=rgb.shape[:2])
