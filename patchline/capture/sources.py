"""Frames for capture: from an rtsp:// camera (the pipeline's own RtspCamera: newest frame wins,
reconnects with back-off) or from the image files of a folder (name order, each once; the time of a
file is its modification time). A pump thread hands them over through a one-frame queue, so the
capture loop can wait for a frame with a timeout (a trigger may expire, the run may end)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from patchline.core.image_file import read_image_bytes
from patchline.core.preprocess import check_pixels, decode_image, list_images
from patchline.errors import PatchlineError
from patchline.urls import redacted_url

log = logging.getLogger("patchline.capture")


@dataclass
class CandidateFrame:
    """One frame: pixels ((H, W) gray or (H, W, 3) RGB uint8, None when unreadable), when it was
    taken (unix seconds), its name (the file's, or '' for a camera), its index from 0, and why it
    could not be read."""

    image: np.ndarray | None
    timestamp: float
    name: str
    index: int
    error: str | None = None


def is_camera(source: str) -> bool:
    """Whether `source` names a camera (rtsp:// or rtsps://) rather than a folder."""
    return str(source).startswith(("rtsp://", "rtsps://"))


def folder_frames(folder: Path, stop: threading.Event) -> Iterator[CandidateFrame]:
    """The image files of `folder` in name order, decoded (bounded size and pixel count); an
    unreadable file is a frame with `error` set."""
    for index, path in enumerate(list_images(folder)):
        if stop.is_set():
            return
        try:
            stamp = path.stat().st_mtime
            image = check_pixels(decode_image(read_image_bytes(path, "frame"), source=f"frame {path.name}"))
            yield CandidateFrame(image, stamp, path.name, index)
        except (PatchlineError, OSError) as exc:
            reason = str(exc).replace(str(path), path.name)
            yield CandidateFrame(None, time.time(), path.name, index, reason)


def camera_frames(url: str, stop: threading.Event) -> Iterator[CandidateFrame]:
    """The camera's frames as it delivers them (the newest when capture falls behind), until `stop`."""
    from patchline.plugins.camera import RtspCamera

    camera = RtspCamera(url)
    for index, (rgb, timestamp, _seq) in enumerate(camera.frames(stop)):
        yield CandidateFrame(rgb, float(timestamp), "", index)


class FramePump:
    """Runs a source's generator on its own thread; `get(timeout)` returns the next frame, None when
    none came within `timeout`, and raises EOFError once the source has ended."""

    def __init__(self, source: str, stop: threading.Event):
        self.source = redacted_url(source) if is_camera(source) else str(source)
        self._frames = camera_frames(source, stop) if is_camera(source) else folder_frames(Path(source), stop)
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = stop
        self._ended = threading.Event()
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._pump, name="patchline-capture-source", daemon=True)

    def start(self) -> "FramePump":
        self._thread.start()
        return self

    def _pump(self) -> None:
        try:
            for frame in self._frames:
                while not self._stop.is_set():
                    try:
                        self._queue.put(frame, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - the loop reports it in one sentence
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("capture source %s failed: %s", self.source, self.failure)
        finally:
            self._frames.close()
            self._ended.set()

    def get(self, timeout: float) -> CandidateFrame | None:
        """The next frame, or None after `timeout` s without one; EOFError when the source is done."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._ended.is_set() and self._queue.empty():
                raise EOFError from None
            return None

    def join(self, timeout: float = 3.0) -> None:
        """Wait for the pump thread (after `stop` was set); nothing when it never started."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
