"""The stream manager: every stream of a pipeline file running in this process.

Like MindX's StreamManager: build every stream (models opened, banks loaded and checked) before
any frame flows, so a problem is a ConfigError/BankError at start, never a crash mid-stream;
then run them side by side and stop them cleanly.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Mapping

from threadpoolctl import threadpool_limits

from patchline.errors import ConfigError
from patchline.pipeline.config import PipelineConfig
from patchline.pipeline.elements import StreamContext
from patchline.pipeline.graph import Stream

log = logging.getLogger(__name__)


def model_threads(config: PipelineConfig, cores: int | None = None) -> int:
    """onnxruntime intra-op threads per model: the cores shared among the file's models.

    The models of a line run in their own threads (layer2 of frame k+1 beside layer3 of frame k,
    camera beside camera), so they already keep the cores busy together; more threads per model
    would only oversubscribe the cores and make every parallel op wait for a descheduled worker.
    """
    cores = cores or os.cpu_count() or 1
    models = sum(1 for s in config.streams.values() for e in s.elements.values() if e.factory == "mxpi_tensorinfer")
    return max(1, cores // max(1, models))


class StreamManager:
    """Builds and runs a pipeline's streams.

    source: overrides the source of a single-stream file (a folder, or an rtsp:// URL).
    camera: the camera name of a single-stream file (default: each stream's name).
    options: passed to elements (line, banks_root, ort_threads) and streams (max_batch: the most
    waiting frames an element takes at once, default each element's own max_batch).
    on_result(payload), on_status(camera, state, **extra), on_bank(line, version): host callbacks,
    called from pipeline threads.
    """

    def __init__(self, config: PipelineConfig, source: str | None = None, camera: str | None = None,
                 options: Mapping | None = None, on_result: Callable[[dict], None] = lambda payload: None,
                 on_status: Callable[..., None] = lambda camera, state, **extra: None,
                 on_bank: Callable[[str, str], None] = lambda line, version: None):
        if len(config.streams) > 1:
            for flag, value in (("--source", source), ("--camera", camera)):
                if value is not None:
                    raise ConfigError(f"{config.path} has {len(config.streams)} streams; {flag} applies to a "
                                      f"single-stream pipeline file only.")
        self.config = config
        options = dict(options or {})
        if not options.get("ort_threads"):
            options["ort_threads"] = model_threads(config)
        self.stop_event = threading.Event()
        self.streams: dict[str, Stream] = {}
        try:
            for name, cfg in config.streams.items():
                context = StreamContext(stream=name, camera=camera or name, pipeline_path=str(config.path),
                                        options=dict(options), on_result=on_result, on_status=on_status,
                                        on_bank=on_bank)
                self.streams[name] = Stream(cfg, context, source)
        except BaseException:
            self.close()
            raise

    @property
    def live(self) -> bool:
        """True when any stream reads a live camera (it then runs until stopped)."""
        return any(s.context.live for s in self.streams.values())

    def start(self) -> None:
        """Start every stream. While they run, BLAS kernels are single-threaded (every element has its
        own thread already; extra BLAS threads only wait for cores, measured: 15 CPU ms per frame of
        waiting on the ELPV line); close() gives BLAS its threads back."""
        self._blas = threadpool_limits(limits=1, user_api="blas")
        for stream in self.streams.values():
            stream.start(self.stop_event)

    def stop(self) -> None:
        """Ask every source to stop; frames already in the streams still finish."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every stream has finished (its EOS reached every sink)."""
        return all(stream.join(timeout) for stream in self.streams.values())

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
        if getattr(self, "_blas", None) is not None:
            self._blas.restore_original_limits()
            self._blas = None

    def stats(self) -> dict[str, dict]:
        return {name: stream.stats() for name, stream in self.streams.items()}
