"""`patchline run PIPELINE`: run a pipeline file's streams and publish every result over MQTT.

As in a MindX host application, the streams end in appsink and the host takes the results from
there: each verdict goes to the line's MQTT Publisher (verdict, alarm, status, bank topics of
DESIGN §6). A folder source ends when the folder is done; a camera runs until SIGINT / SIGTERM.
This module never imports MindSpore or torch.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

from patchline.app.drift import DriftMonitor, DriftRule, reference_of
from patchline.errors import ConfigError, PatchlineError
from patchline.paths import spool_root
from patchline.pipeline.config import load_pipeline
from patchline.pipeline.streams import StreamManager

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 5.0


class RunHost:
    """The host side: counts results, hands them to the line's Publisher, keeps camera statuses.

    Its callbacks run on pipeline threads (appsink, camera grabber, bank watcher).
    """

    def __init__(self, max_frames: int | None, on_enough, echo: bool, drift_rule: DriftRule = DriftRule(),
                 snapshots=None, publish_snapshots: bool = False):
        self.max_frames = max_frames
        self.snapshots = snapshots  # SnapshotStore for alarm JPEGs, or None
        self.publish_snapshots = publish_snapshots
        self.drift_rule = drift_rule
        self.drift: dict[str, DriftMonitor] = {}  # camera → its rolling window
        self.contexts: dict = {}  # camera → its stream's context (line, live bank meta)
        self.on_enough = on_enough
        self.echo = echo
        self.publishers: dict = {}  # line → Publisher
        self.verdicts: Counter = Counter()
        self.per_camera: Counter = Counter()
        self.errors_per_camera: Counter = Counter()
        self.states: dict[str, str] = {}
        self.bank_versions: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def results(self) -> int:
        return sum(self.verdicts.values())

    def on_result(self, payload: dict) -> None:
        verdict = payload.get("verdict", "none")
        camera = payload.get("camera")
        jpeg = payload.pop("_snapshot_jpeg", None)  # the post-process's snapshot of a defect frame
        with self._lock:
            if self.max_frames is not None and sum(self.verdicts.values()) >= self.max_frames:
                return  # frames already in the stream when --max-frames was reached: not reported
            self.verdicts[verdict] += 1
            self.per_camera[camera] += 1
            if verdict == "error":
                self.errors_per_camera[camera] += 1
            total = sum(self.verdicts.values())
        publisher = self.publishers.get(payload.get("line"))
        if jpeg is not None:
            self._keep_snapshot(payload, jpeg, publisher)
        if publisher is not None:
            publisher.publish_result(payload)
        elif self.echo:
            sys.stdout.write(json.dumps(payload) + "\n")
        if verdict in ("good", "defect") and payload.get("score") is not None:
            self._watch_drift(camera, payload, publisher)
        if self.max_frames is not None and total >= self.max_frames:
            self.on_enough()

    def _keep_snapshot(self, payload: dict, jpeg: bytes, publisher) -> None:
        """Save the alarm's JPEG (the payload keeps its name only if it was kept) and, when asked,
        queue it for `…/snapshot` ahead of the alarm that names it."""
        saved = None
        if self.snapshots is not None:
            try:
                saved = self.snapshots.save(payload["snapshot"], jpeg)
            except OSError as exc:  # a full or read-only disk must not stop the line
                log.warning("snapshot %s not saved: %s", payload["snapshot"], exc)
        if saved is None:
            payload.pop("snapshot", None)
            return
        if self.publish_snapshots and publisher is not None:
            publisher.publish_snapshot(payload["camera"], jpeg)

    def _watch_drift(self, camera: str, payload: dict, publisher) -> None:
        """Feed the camera's drift window; on a change, publish it and set the camera's status."""
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
        if publisher is not None:
            publisher.publish_drift(camera, {"drift": changed, "bank_version": payload.get("bank_version"), **stats})
        self.on_status(camera, "drift" if changed else "online", drift=stats)

    def on_status(self, camera: str, state: str, **extra) -> None:
        self.states[camera] = state
        for publisher in self.publishers.values():
            if camera in publisher.cameras:
                publisher.set_status(camera, state, **extra)

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
        publisher = self.publishers.get(line)
        if publisher is not None:
            publisher.publish_bank(version)


def _snapshot_store(folder: str | Path, quota_mb: float):
    """The SnapshotStore for --snapshots, or a ConfigError naming what is wrong with the folder or quota."""
    from patchline.report.snapshots import SnapshotStore

    if not quota_mb or quota_mb <= 0:
        raise ConfigError(f"--snapshot-quota-mb must be a positive number of megabytes, not {quota_mb}.")
    try:
        for partial in Path(folder).glob("*.part"):  # a snapshot a crash or a full disk left half-written
            partial.unlink(missing_ok=True)
        return SnapshotStore(folder, int(quota_mb * 1024 * 1024))
    except OSError as exc:
        raise ConfigError(f"cannot use {folder} for snapshots: {exc.strerror or exc}.") from None


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


def _summary(manager: StreamManager, host: RunHost, seconds: float) -> str:
    rows = [f"patchline run {manager.config.path}: {seconds:.1f} s"]
    for name, stream in manager.streams.items():
        st = stream.stats()
        cameras = stream.cameras
        n = sum(host.per_camera[c] for c in cameras)
        fps = n / st["seconds"] if st["seconds"] > 0 else 0.0
        rows.append(f"  stream {name} (camera{'s' if len(cameras) > 1 else ''} {', '.join(cameras)}, line "
                    f"{stream.context.line}): {st['frames_in']} frames in, "
                    f"{n} results, {fps:.1f} frames/s, {sum(host.errors_per_camera[c] for c in cameras)} errors, "
                    f"{st['dropped']} dropped" + (f"; stopped: {st['fatal']}" if st["fatal"] else ""))
    counts = ", ".join(f"{host.verdicts[v]} {v}" for v in ("good", "defect", "error"))
    rows.append(f"  verdicts: {counts}")
    for line, publisher in host.publishers.items():
        s = publisher.stats()
        rows.append(f"  mqtt {line}: {s['delivered']} delivered, {s['queued']} queued, "
                    f"{s['dropped_verdicts']} verdicts dropped, {s['dropped_alarms']} alarms dropped, "
                    f"{s['spooled_alarms']} alarms spooled"
                    + (f", {s['unspooled_alarms']} alarms in memory only" if s["unspooled_alarms"] else "")
                    + (f", {s['lost_alarms']} alarms LOST (the spool could not write them)" if s["lost_alarms"] else ""))
    return "\n".join(rows)


def run_pipeline(
    pipeline_path: str | Path,
    source: str | list[str] | None = None,
    mqtt_url: str | None = None,
    *,
    camera: str | None = None,
    line: str | None = None,
    banks_root: str | Path | None = None,
    allow_plugins: Iterable[str] = (),
    max_frames: int | None = None,
    spool_dir: str | Path | None = None,
    mqtt_username: str | None = None,
    mqtt_password: str | None = None,
    mqtt_ca: str | None = None,
    mqtt_cert: str | None = None,
    mqtt_key: str | None = None,
    mqtt_insecure: bool = False,
    ort_threads: int | None = None,
    status_interval: float = STATUS_INTERVAL_S,
    drift_window: int | None = None,
    echo: bool = False,
    quiet: bool = False,
    publish_timeout: float = 10.0,
    snapshots_dir: str | Path | None = None,
    snapshot_quota_mb: float = 500.0,
    publish_snapshots: bool = False,
    loop_folder: bool = False,
    folder_fps: float | None = None,
    max_batch: int | None = None,
    on_delivered=None,
    on_start=None,
) -> int:
    """Load, check and run a pipeline file; publish results; print a summary. Returns the exit status.

    source: a folder of images or an rtsp:// URL, replacing the source of a single-stream file (a
    list: one per source of a stream that merges several, in the file's order).
    mqtt_url: mqtt://host:port (mqtts:// for TLS); None publishes nothing (echo=True prints JSON lines).
    line / banks_root: override the post-process's line and banks props.
    max_frames: stop after this many results (tests and benchmarks).
    snapshots_dir: keep a JPEG of every defect frame there (at most snapshot_quota_mb, oldest
    removed first), named in its alarm; publish_snapshots: also send it on `…/<camera>/snapshot`.
    loop_folder: folder sources start again at the end, until stopped.
    folder_fps: folder sources read one file every 1 / folder_fps s (a camera's pace) instead of
    as fast as the stream takes them.
    max_batch: the most waiting frames an element takes at once (default: each element's own).
    on_delivered(topic, payload bytes): called on the MQTT thread for every message the broker
    acknowledged (QoS 1 PUBACK); on_start(manager): called with the built StreamManager just before
    its streams start. Both for benchmarks that observe a run from outside.
    """
    from patchline.mqtt.broker import BrokerSettings
    from patchline.mqtt.publisher import Publisher

    if publish_snapshots and not (snapshots_dir and mqtt_url):
        raise ConfigError("--publish-snapshots needs --snapshots DIR and --mqtt URL: it publishes the snapshots "
                          "it keeps.")
    if folder_fps is not None and (isinstance(folder_fps, bool) or not isinstance(folder_fps, (int, float))
                                   or not 0 < folder_fps < float("inf")):
        raise ConfigError(f"--fps must be a positive number of frames per second, got {folder_fps}.")
    if max_batch is not None and not (isinstance(max_batch, int) and max_batch > 0):
        raise ConfigError(f"max_batch must be a positive whole number of frames, got {max_batch}.")
    config = load_pipeline(pipeline_path, allow_plugins)
    store = _snapshot_store(snapshots_dir, snapshot_quota_mb) if snapshots_dir else None
    broker = None
    if mqtt_url:
        broker = BrokerSettings.from_url(mqtt_url, mqtt_username, mqtt_password, mqtt_ca, mqtt_cert, mqtt_key,
                                         mqtt_insecure)
    stop_event = threading.Event()
    host = RunHost(max_frames, stop_event.set, echo, DriftRule(window=drift_window) if drift_window else DriftRule(),
                   store, publish_snapshots)
    options = {"line": line, "banks_root": str(banks_root) if banks_root else None, "ort_threads": ort_threads,
               "snapshots": store is not None, "loop_folder": loop_folder, "folder_fps": folder_fps,
               "max_batch": max_batch}
    manager = StreamManager(config, source, camera, options, host.on_result, host.on_status, host.on_bank)
    host.contexts = {cam: stream.context for stream in manager.streams.values() for cam in stream.cameras}
    try:
        if folder_fps is not None and not any(getattr(stream.nodes[s].element, "FACTORY", None) == "folder"
                                              for stream in manager.streams.values() for s in stream.cfg.sources):
            raise ConfigError("--fps paces folder sources, and this run reads none: a camera sets its own pace.")
        for name, stream in manager.streams.items():
            if stream.context.line is None and line is None:
                raise ConfigError(f"stream '{name}' of {config.path} has no post-process that names a line; "
                                  f"pass --line NAME.")
        if broker is not None:
            cameras_by_line: dict[str, list[str]] = {}
            for name, stream in manager.streams.items():
                cameras_by_line.setdefault(stream.context.line or line, []).extend(stream.cameras)
            root = Path(spool_dir) if spool_dir else spool_root()
            for stream_line, cameras in cameras_by_line.items():
                host.publishers[stream_line] = Publisher(broker, stream_line, cameras, root / stream_line,
                                                         on_delivered=on_delivered)
        for stream in manager.streams.values():
            if stream.context.line is not None:
                host.bank_versions[stream.context.line] = stream.context.bank_version()
        for publisher in host.publishers.values():
            publisher.start()
            version = host.bank_versions.get(publisher.line)
            if version:
                publisher.publish_bank(version)
        for name, stream in manager.streams.items():
            if not stream.context.live:
                for camera, given in zip(stream.cameras, [source] if isinstance(source, str) or source is None
                                         else source):
                    host.on_status(camera, "online", source=str(given or name))
    except BaseException:
        manager.close()
        for publisher in host.publishers.values():
            publisher.close(1.0)
        raise

    previous = _install_signals(manager.stop)
    stop_event_watch = threading.Thread(target=lambda: (stop_event.wait(), manager.stop()), daemon=True)
    stop_event_watch.start()
    if on_start is not None:
        on_start(manager)
    began = time.perf_counter()
    manager.start()
    try:
        last_status, last_counts = time.monotonic(), Counter()
        while not manager.wait(0.2):
            if time.monotonic() - last_status >= status_interval:
                last_status, last_counts = _publish_status(manager, host, last_status, last_counts)
    finally:
        manager.stop()
        manager.wait(10.0)
        manager.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_event.set()
        for name, stream in manager.streams.items():
            st = stream.stats()
            for camera in stream.cameras:
                host.on_status(camera, host.states.get(camera, "online"),
                               fps=round(host.per_camera[camera] / max(st["seconds"], 1e-9), 2),
                               errors=host.errors_per_camera[camera], dropped_frames=st["dropped"],
                               **host.drift_fields(camera))
        for publisher in host.publishers.values():
            publisher.close(publish_timeout)
    seconds = time.perf_counter() - began
    if not quiet:
        print(_summary(manager, host, seconds))
    fatal = [f"stream '{n}': {s.fatal}" for n, s in manager.streams.items() if s.fatal]
    if fatal:
        raise PatchlineError("; ".join(fatal))
    return 0


def _publish_status(manager: StreamManager, host: RunHost, since: float, counts: Counter):
    now = time.monotonic()
    current = Counter(host.per_camera)
    for name, stream in manager.streams.items():
        for cam in stream.cameras:
            fps = (current[cam] - counts[cam]) / max(now - since, 1e-9)
            state = host.states.get(cam, "online")
            line = stream.context.line
            host.on_status(cam, state, fps=round(fps, 2), errors=host.errors_per_camera[cam],
                           dropped_frames=stream.stats()["dropped"], bank_version=host.bank_versions.get(line),
                           **host.drift_fields(cam))
    return now, current
