"""Which frames are candidates for capture: every Nth frame, or the first frame at least T seconds
(by the frames' own times) after the previous candidate. A candidate that fails a quality check is
counted and the schedule moves on all the same: one candidate per period, so a stopped line or a
blurred stretch is skipped at the schedule's pace, not at the camera's. Triggered capture
(triggers.py) takes the first frame after each trigger instead."""

from __future__ import annotations


class EveryNth:
    """Frames 0, N, 2N, … of the source (by the source's frame index)."""

    def __init__(self, n: int):
        self.n = int(n)

    def due(self, index: int, _timestamp: float) -> bool:
        """Whether frame `index` is a candidate."""
        return index % self.n == 0

    def describe(self) -> str:
        return "every frame" if self.n == 1 else f"every {self.n}th frame"


class EveryInterval:
    """The first frame, then each first frame whose time is at least `seconds` after the previous
    candidate's (a camera's grab time, a file's modification time)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.last: float | None = None

    def due(self, _index: int, timestamp: float) -> bool:
        """Whether a frame taken at `timestamp` is a candidate (it becomes the new reference if so)."""
        if self.last is not None and abs(timestamp - self.last) < self.seconds:
            return False
        self.last = timestamp
        return True

    def describe(self) -> str:
        return f"a frame every {self.seconds:g} s"
