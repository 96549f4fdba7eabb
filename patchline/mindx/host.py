"""One stream of a StreamManagerApi on patchline's runner: its appsrc elements fed by the host, its
appsink elements' frames kept for GetResult / GetProtobuf (by sink, in order) or for
GetResultWithUniqueId (by id), as the SDK's stream keeps them."""

from __future__ import annotations

import itertools
import queue
import threading
import time

from patchline.mindx.metadata import EXTERNAL
from patchline.pipeline.config import StreamConfig
from patchline.pipeline.elements import StreamContext
from patchline.pipeline.frame import Frame
from patchline.pipeline.graph import Stream


def _numbered(names, prefix: str) -> list[str]:
    """appsrc / appsink names in the order of their number: the SDK's inPluginId / outPluginId."""
    return sorted(names, key=lambda n: int(n[len(prefix):] or 0))


class HostStream:
    """A running patchline Stream whose sources the host feeds and whose results the host takes."""

    def __init__(self, cfg: StreamConfig, options: dict):
        self.cfg = cfg
        self.sources = _numbered([n for n in cfg.sources if cfg.elements[n].factory == "appsrc"], "appsrc")
        self.sinks = _numbered(cfg.sinks, "appsink")
        self.mode: str | None = None  # "normal" (SendData / SendProtobuf) or "unique" (…WithUniqueId)
        self._ids = itertools.count()
        self._results = {name: queue.Queue() for name in self.sinks}
        self._by_id: dict[int, dict] = {}
        self._abandoned: set[int] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        context = StreamContext(stream=cfg.name, camera=cfg.name, pipeline_path="<StreamManagerApi>",
                                options={**options, "host_fed": True}, on_sink=self._arrived)
        self.stream = Stream(cfg, context)
        self.stream.start(self._stop)

    def source_name(self, plugin) -> str | None:
        """The appsrc an inPluginId (int) or element name (text) names; None when it names none."""
        if isinstance(plugin, int):
            return self.sources[plugin] if 0 <= plugin < len(self.sources) else None
        return plugin if plugin in self.sources else None

    def send(self, source: str, data: bytes | None, protobuf: dict | None, meta: dict) -> int:
        """Put one frame into `source`; its unique id."""
        unique_id = next(self._ids)
        frame = Frame(self.cfg.name, unique_id, source, time.time(), data=data)
        frame.meta.update(meta)
        frame.meta[EXTERNAL] = {"uniqueId": unique_id, "protobuf": protobuf or {}, "mode": self.mode}
        self.stream.nodes[source].element.feed.put(frame)
        return unique_id

    def _arrived(self, sink: str, frame: Frame) -> None:
        info = frame.meta.get(EXTERNAL, {})
        if info.get("mode") == "unique":
            with self._cond:
                unique_id = info["uniqueId"]
                if unique_id in self._abandoned:  # its GetResultWithUniqueId already timed out
                    self._abandoned.discard(unique_id)
                    return
                self._by_id.setdefault(unique_id, {})[sink] = frame
                self._cond.notify_all()
        else:
            self._results[sink].put(frame)

    def take(self, sink: str, timeout_ms: int) -> Frame | None:
        """The next frame of a sink, waiting up to timeout_ms; None when none came."""
        try:
            return self._results[sink].get(timeout=max(0, timeout_ms) / 1000.0)
        except queue.Empty:
            return None

    def take_id(self, unique_id: int, timeout_ms: int) -> Frame | None:
        """The frame of a unique id once every sink has it (the first sink's frame); None on timeout."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000.0
        with self._cond:
            while len(self._by_id.get(unique_id, {})) < len(self.sinks):
                left = deadline - time.monotonic()
                if left <= 0:
                    self._abandoned.add(unique_id)
                    self._by_id.pop(unique_id, None)
                    return None
                self._cond.wait(left)
            frames = self._by_id.pop(unique_id)
        return frames[self.sinks[0]]

    def close(self) -> None:
        """End the stream: every appsrc ends, the frames in flight finish, the elements are closed."""
        for name in self.sources:
            self.stream.nodes[name].element.feed.put(None)
        if not self.stream.join(timeout=30):
            self._stop.set()
        self.stream.close()
