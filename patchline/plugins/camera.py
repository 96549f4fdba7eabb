"""RTSP camera source: newest-frame-wins reading with automatic reconnection.

A grabber thread reads the stream as fast as the camera sends it and keeps only the newest
frame, so a pipeline that falls behind scores fresh frames instead of an ever older backlog;
the frames it never saw are counted as dropped. When the stream cannot be opened or dies, the
grabber reconnects with exponential back-off and reports its state through `on_status`; a
network failure never raises out of `frames()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Iterator

import cv2
import numpy as np

from patchline.urls import redacted_url

log = logging.getLogger("patchline.camera")

StatusCallback = Callable[[str, dict], None]

def _ensure_tcp_transport() -> None:
    # OpenCV reads this when a capture opens; RTSP over UDP loses packets (smeared frames)
    # on busy plant networks, and TCP passes firewalls that allow only the RTSP port.
    opts = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    if "rtsp_transport" not in opts:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join(p for p in (opts, "rtsp_transport;tcp") if p)


class RtspCamera:
    """Reads an RTSP stream with OpenCV's FFmpeg backend over TCP, reconnecting with back-off.

    `on_status(state, info)` is called from the grabber thread with state 'online',
    'reconnecting' (info: attempt, retry_in_s, reason) or 'offline' (after close()).
    `backoff` is (first delay, longest delay) in seconds between connection attempts.
    """

    def __init__(self, url: str, on_status: StatusCallback | None = None,
                 backoff: tuple[float, float] = (0.5, 10.0), open_timeout_s: float = 5.0):
        self.url = url
        self.source = redacted_url(url)
        self.on_status = on_status
        self.backoff = (float(backoff[0]), float(max(backoff)))
        self.open_timeout_s = float(open_timeout_s)
        self._cond = threading.Condition()
        self._frame: tuple[np.ndarray, float, int] | None = None
        self._consumed_seq = 0
        self._seq = 0
        self._dropped = 0
        self._reconnects = 0
        self._state = "starting"
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the grabber thread (frames() does it on first use)."""
        with self._cond:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._grab_loop, name="patchline-camera", daemon=True)
                self._thread.start()

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float, int]]:
        """Yield `(frame_rgb (H, W, 3) uint8, timestamp (unix seconds), seq)` until `stop` is set.

        `seq` counts frames received from the camera since start; a gap means frames were
        dropped because the consumer was slower than the camera. The camera is closed when
        the generator ends.
        """
        self.start()
        try:
            while not stop.is_set() and not self._closed.is_set():
                with self._cond:
                    if self._frame is None or self._frame[2] <= self._consumed_seq:
                        # A short wait so that `stop` is noticed promptly without a busy loop.
                        self._cond.wait(0.1)
                        continue
                    frame = self._frame
                    self._consumed_seq = frame[2]
                yield frame
        finally:
            self.close()

    @property
    def dropped(self) -> int:
        """Frames received but never handed out because a newer one arrived first."""
        with self._cond:
            return self._dropped

    def close(self, timeout: float = 2.0) -> None:
        """Stop the grabber, release the stream and report 'offline'."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            # The grabber may sit in a blocking open/read for up to open_timeout_s; it is a
            # daemon thread and exits on its own, so waiting longer is pointless.
            t.join(timeout)
        self._report("offline", {})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- grabber -----------------------------------------------------------------------------

    def _report(self, state: str, info: dict) -> None:
        with self._cond:
            self._state = state
        info = {"source": self.source, **info}
        if state == "reconnecting":
            log.warning("camera %s unavailable (%s); retry %d in %.1f s", self.source,
                        info.get("reason"), info.get("attempt", 0), info.get("retry_in_s", 0.0))
        else:
            log.info("camera %s %s", self.source, state)
        if self.on_status is not None:
            try:
                self.on_status(state, info)
            except Exception:  # a broken callback must not kill the camera
                log.exception("camera status callback failed")

    def _open(self) -> cv2.VideoCapture:
        _ensure_tcp_transport()
        ms = int(self.open_timeout_s * 1000)
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])

    def _grab_loop(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            cap = None
            reason = "cannot open the stream"
            try:
                cap = self._open()
                if cap.isOpened():
                    reason, was_online = self._read_until_failure(cap, attempt)
                    if reason is None:  # closed while reading
                        return
                    if was_online:
                        attempt = 0
            except Exception as exc:  # cv2 errors must not end the thread
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                if cap is not None:
                    cap.release()
            if self._closed.is_set():
                return
            attempt += 1
            delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
            with self._cond:
                self._reconnects += 1
                reconnects = self._reconnects
            self._report("reconnecting", {"attempt": attempt, "retry_in_s": delay, "reason": reason,
                                          "reconnects": reconnects})
            self._closed.wait(delay)

    def _read_until_failure(self, cap: cv2.VideoCapture, attempt: int) -> tuple[str | None, bool]:
        """Read frames until the stream fails; returns (why or None when closed, went online)."""
        online = False
        while not self._closed.is_set():
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return ("the stream ended or stopped sending frames" if online else "no frame after opening"), online
            ts = time.time()
            if not online:
                online = True
                self._report("online", {"width": int(bgr.shape[1]), "height": int(bgr.shape[0]),
                                        "after_attempts": attempt})
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            with self._cond:
                self._seq += 1
                if self._frame is not None and self._frame[2] > self._consumed_seq:
                    self._dropped += 1
                self._frame = (rgb, ts, self._seq)
                self._cond.notify_all()
        return None, online
