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
from patchline.paths import ort_threads
from patchline.pipeline.config import PipelineConfig
from patchline.pipeline.elements import StreamContext
from patchline.pipeline.graph import Stream

log = logging.getLogger(__name__)


def model_parallelism(config: PipelineConfig, cores: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """(workers, intra-op threads) of each model element: the cores shared among the file's models.

    A model runs in `workers` threads, each its own frames, each one onnxruntime thread (unless
    `threads` is given). Measured on these 2 cores (bench/pipeline.py): EfficientNet-Lite0 layer2
    costs 1.8 CPU ms per frame on one thread against 3.1 split over two; wide_resnet50_2 layer2
    about the same either way (46 / 44 ms) (the threads of one call wait for each other at every layer).
    """
    cores = cores or os.cpu_count() or 1
    models = sum(1 for s in config.streams.values() for e in s.elements.values() if e.factory == "mxpi_tensorinfer")
    threads = max(1, int(threads or ort_threads(default=1)))
    return max(1, cores // (max(1, models) * threads)), threads


class StreamManager:
    """Builds and runs a pipeline's streams.

    source: overrides the source of a single-stream file (a folder, or an rtsp:// URL; a list, one per
    source, for a stream that merges several).
    camera: the camera name of a single-stream file (default: each stream's name).
    options: passed to elements (line, banks_root, ort_threads: intra-op threads per model call,
    default 1) and streams (max_batch: the most waiting frames an element takes at once, default
    each element's own max_batch).
    on_result(payload), on_status(camera, state, **extra), on_bank(line, version): host callbacks,
    called from pipeline threads.
    """

    def __init__(self, config: PipelineConfig, source: str | list[str] | None = None, camera: str | None = None,
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
        options["model_workers"], options["ort_threads"] = model_parallelism(config, threads=options.get("ort_threads"))
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
