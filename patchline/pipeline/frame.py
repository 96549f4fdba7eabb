"""The buffer that flows between elements: one frame, its working data and per-element metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from patchline.timestamps import iso_utc


@dataclass(eq=False)
class Frame:
    """One frame on its way through a stream.

    data: encoded bytes (file sources) until a decoder turns them into `image`.
    image: (H, W, 3) uint8 RGB or (H, W) uint8 gray working image (decoded, then resized, then cropped).
    frame_shape: (H, W) of the decoded frame, for reporting regions in frame pixels.
    meta: element name → that element's output (e.g. the normalized (3, S, S) float32 tensor,
    a tensorinfer's {output name: (1, C, h, w) float32}); `tensors` merges every model output by name.
    error: a reason once something failed; later elements pass the frame on untouched.
    camera / channel: the camera that took it and its channel id (set by the stream from its source;
    a stream merging several cameras with mxpi_parallel2serial has one per source).
    judge_line / tags: what the host's `admit` hook (stream option) decided at the source — the line
    the post-process judges the frame with (None: the stream's own) and fields its result carries.
    """

    stream: str
    frame_id: int
    source: str
    timestamp: float  # wall clock (epoch seconds) when the frame was taken
    started: float = field(default_factory=time.perf_counter)  # perf_counter when it entered the stream
    data: bytes | None = None
    image: np.ndarray | None = None
    frame_shape: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    error: str | None = None
    result: dict | None = None
    timings: dict = field(default_factory=dict)
    camera: str | None = None
    channel: int = 0
    queued_s: float = 0.0  # seconds spent waiting in queues between elements
    enqueued_at: float = 0.0
    judge_line: str | None = None  # set by the host at the source: the line to judge it with (a recipe)
    tags: dict = field(default_factory=dict)  # set by the host at the source: fields its result carries

    def branch(self) -> "Frame":
        """A copy for another branch of a tee: arrays are shared (elements never write into them)."""
        return Frame(self.stream, self.frame_id, self.source, self.timestamp, self.started, self.data,
                     self.image, self.frame_shape, dict(self.meta), dict(self.tensors), self.error,
                     None if self.result is None else dict(self.result), dict(self.timings), self.camera,
                     self.channel, self.queued_s, self.enqueued_at, self.judge_line, dict(self.tags))

    def iso_time(self) -> str:
        """The frame's time as ISO 8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
        return iso_utc(self.timestamp)

    def latency_ms(self) -> float:
        """Milliseconds since the frame entered the stream (queue waits included)."""
        return round((time.perf_counter() - self.started) * 1000.0, 3)

    def timing_fields(self) -> dict:
        """{"latency_ms", "queue_ms", "processing_ms"}: the frame's time in the stream so far, and
        apart the part it waited in queues (a busy stream's backlog) and the part it was worked on."""
        latency = (time.perf_counter() - self.started) * 1000.0
        queued = min(self.queued_s * 1000.0, latency)
        return {"latency_ms": round(latency, 3), "queue_ms": round(queued, 3),
                "processing_ms": round(latency - queued, 3)}


class EndOfStream:
    """Marker sent down every link when a source is done; never dropped by a leaky queue."""

    def __repr__(self) -> str:
        return "EOS"


EOS = EndOfStream()
