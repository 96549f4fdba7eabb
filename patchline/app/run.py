"""`patchline run PIPELINE`: sources → the pipeline file's chain → sinks.

As in a MindX host application, the streams end in appsink and the host takes the results from
there. `run_pipeline(settings)` builds the chain from a checked RunSettings (run_settings.py),
composes the sinks its settings ask for (sinks.py: snapshot store, MQTT, echo printer, summary)
plus any the caller adds, and hands every verdict, camera status, bank change and drift change to
them in order. A folder source ends when the folder is done; a camera runs until SIGINT / SIGTERM.
This module never imports MindSpore or torch.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from typing import Iterable

from patchline.app.drift import DriftMonitor, DriftRule, reference_of
from patchline.app.plc_run import PlcSink
from patchline.app.run_settings import RunSettings
from patchline.app.sinks import EchoSink, MqttSink, Sink, SnapshotSink, SummarySink, Verdict
from patchline.errors import ConfigError, PatchlineError
from patchline.pipeline.config import load_pipeline
from patchline.pipeline.streams import StreamManager

log = logging.getLogger(__name__)


class RunRouter:
    """Takes the chain's events (on pipeline threads: appsink, camera grabber, bank watcher) and
    hands them to the sinks; stops the run at max_frames; watches each camera's drift."""

    def __init__(self, sinks: list[Sink], summary: SummarySink, max_frames: int | None, on_enough,
                 drift_rule: DriftRule = DriftRule()):
        self.sinks, self.summary = sinks, summary
        self.max_frames, self.on_enough = max_frames, on_enough
        self.drift_rule = drift_rule
        self.drift: dict[str, DriftMonitor] = {}  # camera → its rolling window
        self.contexts: dict = {}  # camera → its stream's context (line, live bank meta)
        self.states: dict[str, str] = {}
        self.bank_versions: dict[str, str] = {}
        self._lock = threading.Lock()

    def on_result(self, payload: dict) -> None:
        verdict = Verdict(payload, payload.pop("_snapshot_jpeg", None))  # the post-process's defect snapshot
        with self._lock:
            if self.max_frames is not None and self.summary.results >= self.max_frames:
                return  # frames already in the stream when --max-frames was reached: not reported
            self.summary.verdict(verdict)
            total = self.summary.results
        for sink in self.sinks:
            sink.verdict(verdict)
        if payload.get("verdict") in ("good", "defect") and payload.get("score") is not None:
            self._watch_drift(verdict)
        if self.max_frames is not None and total >= self.max_frames:
            self.on_enough()

    def _watch_drift(self, verdict: Verdict) -> None:
        """Feed the camera's drift window; on a change, tell the sinks and set the camera's status."""
        camera, payload = verdict.camera, verdict.payload
        context = self.contexts.get(camera)
        meta = context.bank_meta() if context is not None else None
        with self._lock:
            monitor = self.drift.setdefault(camera, DriftMonitor(self.drift_rule))
            changed = monitor.add(payload["score"], payload["verdict"] == "defect",
                                  reference_of(meta) if meta is not None else None)
            stats = dict(monitor.stats)
        if changed is None:
            return
        if changed:
            log.warning("camera %s drifts from its bank's calibration: %s", camera, "; ".join(stats["reasons"]))
        else:
            log.info("camera %s is back within its bank's calibration", camera)
        for sink in self.sinks:
            sink.drift(verdict.line, camera, {"drift": changed, "bank_version": payload.get("bank_version"), **stats})
        self.on_status(camera, "drift" if changed else "online", drift=stats)

    def on_status(self, camera: str, state: str, **extra) -> None:
        self.states[camera] = state
        for sink in self.sinks:
            sink.status(camera, state, extra)

    def drift_fields(self, camera: str) -> dict:
        """{"drift": the camera's window statistics} for its status, or {} before its first frame."""
        drift = self.drift.get(camera)
        return {"drift": dict(drift.stats)} if drift is not None and drift.stats else {}

    def on_bank(self, line: str, version: str) -> None:
        self.bank_versions[line] = version
        with self._lock:  # a new bank, a new calibration: the windows start again
            for camera, context in self.contexts.items():
                if context.line == line:
                    self.drift.pop(camera, None)
        for sink in self.sinks:
            sink.bank(line, version)

    def camera_status(self, manager: StreamManager, since: float | None, counts: Counter | None = None):
        """Every camera's status with its figures: frames/s since `since` (the run's start when
        `counts` is None), errors, dropped frames, bank version, drift. Returns (now, the counts now)."""
        now, current = time.monotonic(), Counter(self.summary.per_camera)
        for stream in manager.streams.values():
            stats = stream.stats()
            seconds = stats["seconds"] if counts is None else now - since
            for cam in stream.cameras:
                frames = current[cam] - (counts or Counter())[cam]
                extra = {"fps": round(frames / max(seconds, 1e-9), 2), "errors": self.summary.errors_per_camera[cam],
                         "dropped_frames": stats["dropped"]}
                if counts is not None:
                    extra["bank_version"] = self.bank_versions.get(stream.context.line)
                self.on_status(cam, self.states.get(cam, "online"), **extra, **self.drift_fields(cam))
        return now, current


def default_sinks(settings: RunSettings, on_delivered=None) -> list[Sink]:
    """The sinks a RunSettings asks for, in the order they must see a verdict."""
    sinks: list[Sink] = []
    if settings.snapshots is not None:
        sinks.append(SnapshotSink(settings.snapshots.folder, settings.snapshots.quota_mb))
    if settings.plc is not None:  # before MQTT: it adds the trigger's result to the verdict it publishes
        sinks.append(PlcSink(settings.plc, settings.mqtt.broker if settings.mqtt is not None else None))
    if settings.mqtt is not None:
        sinks.append(MqttSink(settings.mqtt, settings.publish_snapshots, on_delivered))
    elif settings.echo:
        sinks.append(EchoSink())
    return sinks


def _install_signals(stop) -> dict:
    """SIGINT / SIGTERM stop the sources (frames in flight still finish); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous, received = {}, []

    def handler(signum, _frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.info("stopping on signal %d (again to interrupt)", signum)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _summary(manager: StreamManager, router: RunRouter, seconds: float) -> str:
    summary = router.summary
    rows = [f"patchline run {manager.config.path}: {seconds:.1f} s"]
    for name, stream in manager.streams.items():
        st = stream.stats()
        cameras = stream.cameras
        n = sum(summary.per_camera[c] for c in cameras)
        fps = n / st["seconds"] if st["seconds"] > 0 else 0.0
        rows.append(f"  stream {name} (camera{'s' if len(cameras) > 1 else ''} {', '.join(cameras)}, line "
                    f"{stream.context.line}): {st['frames_in']} frames in, "
                    f"{n} results, {fps:.1f} frames/s, {sum(summary.errors_per_camera[c] for c in cameras)} errors, "
                    f"{st['dropped']} dropped" + (f"; stopped: {st['fatal']}" if st["fatal"] else ""))
    for sink in [summary, *router.sinks]:
        rows += sink.summary_lines()
    return "\n".join(rows)


def _build(settings: RunSettings, router: RunRouter) -> StreamManager:
    """The streams of the file, built (models opened, banks checked) but not started."""
    config = load_pipeline(settings.pipeline, settings.allow_plugins)
    options = {"line": settings.line, "banks_root": str(settings.banks_root) if settings.banks_root else None,
               "ort_threads": settings.ort_threads, "snapshots": settings.snapshots is not None,
               "loop_folder": settings.loop_folder, "folder_fps": settings.folder_fps, "max_batch": settings.max_batch}
    for sink in router.sinks:
        if isinstance(sink, PlcSink):  # the station holds frames back / tags them; recipes' banks load at start
            options.update(admit=sink.admit, recipe_lines=sink.recipe_lines)
    manager = StreamManager(config, settings.source, settings.camera, options, router.on_result, router.on_status,
                            router.on_bank)
    router.contexts = {cam: stream.context for stream in manager.streams.values() for cam in stream.cameras}
    return manager


def _open_sinks(settings: RunSettings, manager: StreamManager, router: RunRouter) -> None:
    """Refuse what the built streams cannot do; start the sinks; every folder camera is online."""
    streams = manager.streams
    if settings.folder_fps is not None and not any(getattr(stream.nodes[s].element, "FACTORY", None) == "folder"
                                                   for stream in streams.values() for s in stream.cfg.sources):
        raise ConfigError("--fps paces folder sources, and this run reads none: a camera sets its own pace.")
    cameras_by_line: dict[str, list[str]] = {}
    for name, stream in streams.items():
        if stream.context.line is None and settings.line is None:
            raise ConfigError(f"stream '{name}' of {manager.config.path} has no post-process that names a line; "
                              f"pass --line NAME.")
        cameras_by_line.setdefault(stream.context.line or settings.line, []).extend(stream.cameras)
        if stream.context.line is not None:
            router.bank_versions[stream.context.line] = stream.context.bank_version()
    plc = next((sink for sink in router.sinks if isinstance(sink, PlcSink)), None)
    if plc is not None:  # a camera's verdicts may name any recipe's line
        for line in plc.recipe_lines:
            cameras_by_line.setdefault(line, [])
            cameras_by_line[line].extend(c for s in streams.values() for c in s.cameras if c not in cameras_by_line[line])
    for sink in router.sinks:
        if isinstance(sink, MqttSink):
            sink.start(cameras_by_line, router.bank_versions)
        elif isinstance(sink, PlcSink):
            sink.start({c: s.context.line or settings.line for s in streams.values() for c in s.cameras},
                       router.on_result)
    given = list(settings.sources) or [None]
    for name, stream in streams.items():
        if not stream.context.live:
            for camera, source in zip(stream.cameras, given):
                router.on_status(camera, "online", source=str(source or name))


def _stream_until_done(settings: RunSettings, manager: StreamManager, router: RunRouter, stop_event) -> float:
    """Start the streams, send statuses every status_interval s until they end; the seconds they ran."""
    previous = _install_signals(manager.stop)
    threading.Thread(target=lambda: (stop_event.wait(), manager.stop()), daemon=True).start()
    began = time.perf_counter()
    manager.start()
    try:
        last_status, last_counts = time.monotonic(), Counter()
        while not manager.wait(0.2):
            if time.monotonic() - last_status >= settings.status_interval:
                last_status, last_counts = router.camera_status(manager, last_status, last_counts)
    finally:
        manager.stop()
        manager.wait(10.0)
        manager.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_event.set()
        router.camera_status(manager, None)
        for sink in router.sinks:
            sink.close()
    return time.perf_counter() - began


def run_pipeline(settings: RunSettings, sinks: Iterable[Sink] = (), *, on_start=None, on_delivered=None) -> int:
    """Run one RunSettings (checked again here) to its end; print a summary unless quiet. Returns 0.

    sinks: added after the ones the settings ask for; they see every verdict, status, bank and drift
    event and are closed at the end. on_start(manager): called with the built StreamManager just
    before its streams start; on_delivered(topic, payload bytes): every message the broker
    acknowledged (QoS 1 PUBACK), on the MQTT thread. Both for benchmarks that observe a run.
    A stream that stopped on a fatal error raises PatchlineError naming it.
    """
    settings.check()
    stop_event = threading.Event()
    summary = SummarySink()
    router = RunRouter([*default_sinks(settings, on_delivered), *sinks], summary, settings.max_frames,
                       stop_event.set, DriftRule(window=settings.drift_window) if settings.drift_window else DriftRule())
    manager = _build(settings, router)
    try:
        _open_sinks(settings, manager, router)
    except BaseException:
        manager.close()
        for sink in router.sinks:
            sink.close(1.0)
        raise
    if on_start is not None:
        on_start(manager)
    seconds = _stream_until_done(settings, manager, router, stop_event)
    if not settings.quiet:
        print(_summary(manager, router, seconds))
    fatal = [f"stream '{n}': {s.fatal}" for n, s in manager.streams.items() if s.fatal]
    if fatal:
        raise PatchlineError("; ".join(fatal))
    return 0
