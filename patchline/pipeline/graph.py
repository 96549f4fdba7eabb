"""One stream as running code: an element per node, a thread per node, bounded queues between them.

Folder sources never lose a frame: queues block when full. Live sources must not fall behind the
camera: the queues up to and including the first model's are leaky — when one is full the
oldest waiting frame is dropped (and counted), so the newest frame wins.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from threadpoolctl import threadpool_limits

from patchline.errors import ConfigError, PatchlineError
from patchline.pipeline.config import StreamConfig
from patchline.pipeline.elements import StreamContext
from patchline.pipeline.factories import source_override_class
from patchline.pipeline.frame import EOS

log = logging.getLogger(__name__)
QUEUE_SIZE = 8  # frames waiting in front of an element of a folder stream (and the largest batch)
LIVE_QUEUE_SIZE = 1  # in front of the leaky part of a live stream: only the newest frame waits


class FrameQueue:
    """A bounded FIFO of frames. Leaky: a put on a full queue drops the oldest frame; EOS is never dropped."""

    def __init__(self, maxsize: int, leaky: bool):
        self.maxsize = maxsize
        self.leaky = leaky
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def put(self, item) -> None:
        with self._cond:
            if item is not EOS:
                item.enqueued_at = time.perf_counter()
                if self.leaky:
                    while len(self._items) >= self.maxsize and self._drop_oldest():
                        pass
                else:
                    while len(self._items) >= self.maxsize:
                        self._cond.wait()
            self._items.append(item)
            self._cond.notify_all()

    def _drop_oldest(self) -> bool:
        for i, queued in enumerate(self._items):
            if queued is not EOS:
                del self._items[i]
                self.dropped += 1
                return True
        return False

    def get(self):
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.popleft()
            if item is not EOS:
                item.queued_s += time.perf_counter() - item.enqueued_at
            self._cond.notify_all()
            return item

    def get_batch(self, limit: int) -> list:
        """Wait for one item, then take up to `limit` frames that are already waiting, in order.
        EOS always comes alone: [EOS]."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            batch = [self._items.popleft()]
            while batch[0] is not EOS and len(batch) < limit and self._items and self._items[0] is not EOS:
                batch.append(self._items.popleft())
            now = time.perf_counter()
            for item in batch:
                if item is not EOS:
                    item.queued_s += now - item.enqueued_at
            self._cond.notify_all()
            return batch

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Node:
    """A built element, its input queue, the nodes it feeds, and its counters."""

    name: str
    element: object
    inbox: FrameQueue | None
    outputs: list = field(default_factory=list)
    processed: int = 0
    busy_s: float = 0.0  # wall seconds inside process()
    cpu_s: float = 0.0  # this thread's CPU seconds inside process()
    errors: int = 0
    skipped: int = 0
    workers: int = 1  # threads running this element (see Element.workers)
    lock: threading.Condition = field(default_factory=threading.Condition, repr=False)  # order + counters
    take_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one worker takes at a time
    taken: int = 0  # batches taken from the inbox / sent on, so workers send in arrival order
    sent: int = 0
    running: int = 0
    eos_left: int = 1  # upstream links still to end (a merge ends after all of its inputs)
    closing: bool = False


def _build_source(cfg: StreamConfig, name: str, context: StreamContext, source: str | None):
    """The element for source `name`, or the folder / camera that `source` puts in its place."""
    el = cfg.elements[name]
    if source is None:
        if el.factory == "appsrc" and not context.options.get("host_fed"):
            raise ConfigError(f"the stream reads {name}, which a host feeds: pass --source FOLDER or --source rtsp://….")
        return el.cls(name, el.parsed, context)
    channel = int(name[len("appsrc"):] or 0) if el.factory == "appsrc" else int(el.parsed.get("channelId") or 0)
    if source.startswith(("rtsp://", "rtsps://")):
        return source_override_class("rtsp")(name, {"rtspUrl": source, "channelId": channel}, context)
    return source_override_class("folder")(name, {"folder": source, "channelId": channel}, context)


def _sources_given(cfg: StreamConfig, source) -> list:
    """One replacement (or None) per source element of the stream, from --source (one or a list)."""
    if source is None:
        return [None] * len(cfg.sources)
    given = [source] if isinstance(source, str) else list(source)
    if len(given) != len(cfg.sources):
        raise ConfigError(f"stream '{cfg.name}' has {len(cfg.sources)} source(s) ({', '.join(cfg.sources)}) but "
                          f"{len(given)} --source value(s) were given; give one per source, in that order.")
    return given


class Stream:
    """A running stream: build with `Stream(cfg, context, source)`, then `start(stop_event)`, `join()`, `close()`."""

    def __init__(self, cfg: StreamConfig, context: StreamContext, source: str | None = None,
                 queue_size: int = QUEUE_SIZE):
        self.cfg = cfg
        self.context = context
        self.nodes: dict[str, Node] = {}
        self.threads: list[threading.Thread] = []
        self.fatal: str | None = None
        self.frames_in = 0
        self.held_back = 0  # frames the host's admit hook did not let in (a triggered camera between triggers)
        self._frames_in_lock = threading.Lock()  # several sources (a merge) count into it
        self.started_at = self.ended_at = None
        given = dict(zip(cfg.sources, _sources_given(cfg, source)))  # a wrong count: its own sentence
        try:
            for name in cfg.order:
                if name in given:
                    element = _build_source(cfg, name, context, given[name])
                    context.live = context.live or bool(getattr(element, "live", False))
                    # one camera per source: the stream's camera, or <camera>-<channel> when it merges several
                    element.camera_name = context.camera if len(given) == 1 else \
                        f"{context.camera}-{int(getattr(element, 'channel', 0))}"
                else:
                    el = cfg.elements[name]
                    element = el.cls(name, el.parsed, context)
                self.nodes[name] = Node(name, element, None)
        except PatchlineError as exc:
            self.close()
            raise type(exc)(f"{cfg.name}/{name}: {exc}") from None
        self._make_queues(queue_size)

    def _make_queues(self, queue_size: int) -> None:
        """Queues in front of every element; leaky up to the first model when the source is live."""
        leaky_zone = self.context.live
        for name in self.cfg.order:
            el = self.cfg.elements[name]
            node = self.nodes[name]
            if name not in self.cfg.sources:
                size = el.parsed.get("max-size-buffers") if el.factory == "queue" else None
                leaky = leaky_zone if el.factory != "queue" or el.parsed.get("leaky") is None \
                    else el.parsed["leaky"] == "2"
                node.inbox = FrameQueue(size or (LIVE_QUEUE_SIZE if leaky else queue_size), leaky)
                if el.factory == "mxpi_tensorinfer":
                    leaky_zone = False
            node.outputs = [self.nodes[link.target] for link in el.next]
        for name in self.cfg.order:
            for out in self.nodes[name].outputs:
                out.eos_left = sum(1 for n in self.cfg.order for o in self.nodes[n].outputs if o is out)

    # ---- running

    def start(self, stop: threading.Event) -> None:
        self.started_at = time.perf_counter()
        for name in self.cfg.order:
            node = self.nodes[name]
            if name in self.cfg.sources:
                self.threads.append(threading.Thread(target=self._run_source, args=(node, stop),
                                                     name=f"{self.cfg.name}/{name}", daemon=True))
                continue
            node.workers = node.running = max(1, min(int(getattr(node.element, "workers", 1)), os.cpu_count() or 1))
            for i in range(node.workers):
                self.threads.append(threading.Thread(target=self._run_element, args=(node,),
                                                     name=f"{self.cfg.name}/{name}" + (f"#{i}" if i else ""),
                                                     daemon=True))
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _send(node: Node, item) -> None:
        outputs = node.outputs
        route = getattr(node.element, "route", None)
        if route is not None and item is not EOS:
            outputs = [outputs[i] for i in route(item)]  # a distributor picks the branch
        for i, out in enumerate(outputs):
            out.inbox.put(item if (item is EOS or i == len(outputs) - 1) else item.branch())

    def _run_source(self, node: Node, stop: threading.Event) -> None:
        camera, channel = node.element.camera_name, int(getattr(node.element, "channel", 0))
        admit = self.context.options.get("admit")  # the host's gate: hold a frame back, or tag it
        try:
            for frame in node.element.frames(stop):
                frame.camera, frame.channel = camera, channel
                if admit is not None and not admit(frame):
                    self.held_back += 1
                    continue
                with self._frames_in_lock:
                    self.frames_in += 1
                self._send(node, frame)
        except PatchlineError as exc:
            self.fatal = str(exc)
            log.error("stream %s stops: %s", self.cfg.name, exc)
        except Exception as exc:  # a broken source ends its stream, not the process
            self.fatal = f"{node.name}: {exc}"
            log.exception("stream %s: source %s failed", self.cfg.name, node.name)
        finally:
            self._send(node, EOS)

    def _run_element(self, node: Node) -> None:
        """One worker of a node: take waiting frames, process them, send them on. With several
        workers, batches are sent on in the order they were taken, so frames keep their order."""
        threadpool_limits(limits=1, user_api="openmp")  # per thread: faiss runs in this thread only
        element = node.element
        limit = max(1, min(element.max_batch, int(self.context.options.get("max_batch") or element.max_batch)))
        while True:
            with node.take_lock:  # its batch number is its place in the order; waiting here blocks no sender
                batch = node.inbox.get_batch(limit)
                if batch[0] is not EOS:
                    turn, node.taken = node.taken, node.taken + 1
            if batch[0] is EOS:
                with node.lock:
                    if not node.closing and node.eos_left > 1:
                        node.eos_left -= 1  # one input of a merge ended; the others still send
                        continue
                    node.closing = True
                self._worker_done(node)
                return
            work = [f for f in batch if f.error is None or element.handles_errors]
            done = dict(zip(map(id, work), self._process(node, work))) if work else {}
            with node.lock:
                node.lock.wait_for(lambda: node.sent == turn)
                for frame in batch:
                    out = done.get(id(frame), frame)  # frames with an error pass an image op untouched
                    if out is None:
                        node.skipped += 1
                    else:
                        self._send(node, out)
                node.sent += 1
                node.lock.notify_all()

    def _worker_done(self, node: Node) -> None:
        """A worker saw EOS: it leaves EOS for the others; the last one sends it on."""
        with node.lock:
            node.running -= 1
            last = node.running == 0
            if not last:
                node.inbox.put(EOS)
        if last:
            self._send(node, EOS)
            if not node.outputs:
                self.ended_at = time.perf_counter()

    def _process(self, node: Node, frames: list) -> list:
        """The element's results for frames waiting together; when a batch fails, each frame is
        tried alone, so one bad frame gets an error result and the stream goes on."""
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            outs = node.element.process_batch(frames)
        except Exception as exc:
            outs = [self._failed(node, frames[0], exc)] if len(frames) == 1 else [self._alone(node, f) for f in frames]
        spent = time.perf_counter() - began
        for frame in frames:
            frame.timings[node.name] = spent / len(frames)
        with node.lock:
            node.busy_s += spent
            node.cpu_s += time.thread_time() - began_cpu
            node.processed += len(frames)
        return outs

    def _alone(self, node: Node, frame):
        try:
            return node.element.process_batch([frame])[0]
        except Exception as exc:
            return self._failed(node, frame, exc)

    def _failed(self, node: Node, frame, exc: BaseException):
        frame.error = str(exc) if isinstance(exc, PatchlineError) else f"{node.name}: {exc}"
        if not isinstance(exc, PatchlineError):
            log.error("stream %s: %s failed on frame %s: %s", self.cfg.name, node.name, frame.frame_id, exc,
                      exc_info=exc)
        with node.lock:
            node.errors += 1
        return frame

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread; True when all have finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def close(self) -> None:
        for node in self.nodes.values():
            try:
                node.element.close()
            except Exception:  # closing must reach every element
                log.exception("closing %s failed", node.name)

    @property
    def cameras(self) -> list[str]:
        """The camera of each source, in the file's order (one unless the stream merges cameras)."""
        return [self.nodes[s].element.camera_name for s in self.cfg.sources]

    def stats(self) -> dict:
        """Counters: frames in, dropped (leaky queues + skipframe), errors per element, busy seconds per element."""
        dropped = sum(n.inbox.dropped for n in self.nodes.values() if n.inbox is not None)
        dropped += sum(int(getattr(self.nodes[s].element, "dropped", 0)) for s in self.cfg.sources)  # newest frame won
        end = self.ended_at or time.perf_counter()
        return {
            "frames_in": self.frames_in,
            "dropped": dropped,
            "skipped": sum(n.skipped for n in self.nodes.values() if n.element.FACTORY in ("mxpi_skipframe", "mxpi_distributor")),
            "element_errors": {n.name: n.errors for n in self.nodes.values() if n.errors},
            "busy_s": {n.name: n.busy_s for n in self.nodes.values()},
            "cpu_s": {n.name: n.cpu_s for n in self.nodes.values()},
            "seconds": (end - self.started_at) if self.started_at else 0.0,
            "fatal": self.fatal,
        }
