"""`patchline capture SOURCE --out DIR`: collect good images for training from a camera or a folder.

Candidates come from the schedule (every Nth frame, one every T seconds) or one per MQTT trigger
(capture/triggers.py); each must pass the quality checks (capture/quality.py: exposure, blur,
near-duplicate) before it is written to DIR (capture/folder.py), which `patchline train --images
DIR` and `patchline tune --images DIR` read as they are. Every skipped candidate is counted and its
reason logged. The capture ends at --count images in DIR, at the --quota-mb, after --duration s,
when a folder source is done, or on SIGINT / SIGTERM; a summary says which.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from patchline.capture.folder import CaptureFolder, camera_file_stem
from patchline.capture.quality import KEPT_WINDOW, QualityGate
from patchline.capture.schedule import EveryInterval, EveryNth
from patchline.capture.settings import CaptureSettings
from patchline.capture.sources import CandidateFrame, FramePump, is_camera
from patchline.capture.triggers import MqttTriggers
from patchline.core.preprocess import list_images, load_image
from patchline.errors import ConfigError, PatchlineError

log = logging.getLogger("patchline.capture")

STOP_WORDS = {"count": "the folder holds --count images", "quota": "the folder reached its --quota-mb",
              "duration": "--duration passed", "ended": "the source folder is done", "signal": "stopped on a signal"}


@dataclass
class CaptureRun:
    """What one capture saw: frames from the source, candidates judged, skips by reason, why it ended."""

    frames: int = 0
    candidates: int = 0
    skipped: Counter = field(default_factory=Counter)
    stopped: str = ""


def _install_signals(stop: threading.Event) -> dict:
    """SIGINT / SIGTERM end the capture after the frame in hand."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        log.info("stopping on signal %d", signum)
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _consider(frame: CandidateFrame, settings: CaptureSettings, gate: QualityGate, folder: CaptureFolder,
              run: CaptureRun) -> dict:
    """Judge one candidate and write it when it passes; returns {'saved': name} or {'skipped': reason,
    'detail': …} (reason 'quota' when it would pass the quota: nothing written)."""
    run.candidates += 1
    label = frame.name or f"frame {frame.index}"
    stem = Path(frame.name).stem if frame.name else camera_file_stem(settings.prefix, frame.timestamp, frame.index)
    if frame.image is None:
        problem = ("unreadable", frame.error or "cannot read the frame")
    elif folder.path_for(stem).exists():
        problem = ("already in the folder", f"{folder.path_for(stem).name} exists (an earlier capture)")
    else:
        problem = gate.judge(frame.image)
    if problem is None:
        path = folder.write(stem, frame.image)
        if path is None:
            return {"skipped": "quota", "detail": f"{label} does not fit in the --quota-mb"}
        gate.kept()
        log.info("kept %s as %s", label, path.name)
        return {"saved": path.name}
    run.skipped[problem[0]] += 1
    log.info("skipped %s: %s: %s", label, problem[0], problem[1])
    return {"skipped": problem[0], "detail": problem[1]}


def _capture_loop(settings: CaptureSettings, pump: FramePump, folder: CaptureFolder, gate: QualityGate,
                  triggers: MqttTriggers | None, stop: threading.Event) -> CaptureRun:
    """Take frames until a limit, the source's end or `stop`; returns what happened."""
    run = CaptureRun()
    schedule = EveryInterval(settings.interval_s) if settings.interval_s else EveryNth(settings.every or 1)
    deadline = None if settings.duration_s is None else time.monotonic() + settings.duration_s
    while not run.stopped:
        if stop.is_set():
            run.stopped = "signal"
            break
        if deadline is not None and time.monotonic() >= deadline:
            run.stopped = "duration"
            break
        try:
            frame = pump.get(0.2)
        except EOFError:
            run.stopped = "ended"
            break
        trigger = triggers.take(frame.timestamp if frame is not None else None) if triggers is not None else None
        if frame is None:
            continue
        run.frames += 1
        if triggers is not None and trigger is None:
            continue
        if triggers is None and not schedule.due(frame.index, frame.timestamp):
            continue
        outcome = _consider(frame, settings, gate, folder, run)
        if trigger is not None:
            triggers.answer(trigger, outcome)
        if outcome.get("skipped") == "quota":
            run.stopped = "quota"
        else:
            run.stopped = folder.full() or ""
    return run


def _summary(settings: CaptureSettings, pump: FramePump, folder: CaptureFolder, run: CaptureRun,
             triggers: MqttTriggers | None, seconds: float) -> str:
    mb = 1024 * 1024
    rows = [f"patchline capture {pump.source} → {folder.folder}: {seconds:.1f} s, {run.frames} frames, "
            f"{run.candidates} candidates",
            f"  kept {folder.written} ({folder.bytes_written / mb:.1f} MB); the folder holds {folder.images} images, "
            f"{folder.used / mb:.1f} MB",
            f"  skipped {sum(run.skipped.values())}" + (": " + ", ".join(f"{k} {n}" for k, n in sorted(run.skipped.items()))
                                                      if run.skipped else "")]
    if triggers is not None:
        c = triggers.counts()
        rows.append(f"  triggers: {c['received']} received, {c['overruns']} overruns, {c['refused']} refused, "
                    f"{c['expired']} without a frame")
    rows.append(f"  stopped: {STOP_WORDS.get(run.stopped, run.stopped)}")
    if folder.written:
        rows.append(f"  train with: patchline train --line LINE --images {folder.folder}")
    return "\n".join(rows)


def _remember_existing(folder: CaptureFolder, gate: QualityGate) -> None:
    """The last images already in the folder count as kept: a resumed capture does not repeat them."""
    for path in folder.existing[-KEPT_WINDOW:]:
        try:
            gate.kept(load_image(path))
        except PatchlineError:
            log.warning("%s in the output folder is not a readable image", path.name)


def run_capture(settings: CaptureSettings, quiet: bool = False) -> int:
    """Run one capture (settings checked again here) to its end and print its summary unless quiet.
    Returns 0; a source that failed raises PatchlineError."""
    settings.check()
    if not is_camera(settings.source) and not list_images(settings.source):
        raise ConfigError(f"capture source folder {settings.source} holds no images (.png, .jpg, .bmp, .tif).")
    folder = CaptureFolder(settings.out, settings.fmt, settings.count, int(settings.quota_mb * 1024 * 1024))
    gate = QualityGate(settings.rules)
    _remember_existing(folder, gate)
    stop = threading.Event()
    pump = FramePump(settings.source, stop)
    full = folder.full()
    triggers = None
    if full is None and settings.trigger:
        triggers = MqttTriggers(settings.broker, settings.camera, settings.trigger_expire_s).start()
    previous = _install_signals(stop)
    began = time.monotonic()
    try:
        run = CaptureRun(stopped=full) if full else _capture_loop(settings, pump.start(), folder, gate, triggers, stop)
    finally:
        stop.set()
        pump.join()
        if triggers is not None:
            triggers.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not quiet:
        print(_summary(settings, pump, folder, run, triggers, time.monotonic() - began))
    if pump.failure:
        raise PatchlineError(f"capture source {pump.source} failed: {pump.failure}")
    return 0
