"""Where a run's verdicts go: sinks.

A sink takes the run's events through one small interface (`Sink`): every verdict (with the
frame's snapshot JPEG, if one was made), every camera status, every live-bank change and drift
change, and `close()` at the end. The run hands each event to its sinks in order; adding an
output (a PLC, a webhook, a file archive) means adding a sink, not parameters to the run.

The sinks `patchline run` composes from its RunSettings: SnapshotSink (keeps the alarm JPEGs;
first, so a snapshot it could not keep is named nowhere), MqttSink (the line's Publisher),
EchoSink (JSON lines on stdout when nothing is published) and SummarySink (the counts the run's
summary and statuses use).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from patchline.errors import ConfigError

log = logging.getLogger("patchline.app.run")


@dataclass
class Verdict:
    """One result of the chain: its payload (the `…/verdict` message) and the defect frame's
    snapshot JPEG (None when there is none, or when it was not kept)."""

    payload: dict
    snapshot: bytes | None = None

    @property
    def camera(self) -> str:
        return self.payload.get("camera")

    @property
    def line(self) -> str | None:
        return self.payload.get("line")


class Sink:
    """The one interface of a verdict sink; every method may be left as it is (it does nothing).

    Called from pipeline threads (results, camera statuses, the bank watcher): a sink that keeps
    state guards it. `summary_lines()` adds lines to the run's summary.
    """

    def verdict(self, verdict: Verdict) -> None:
        """One frame's result."""

    def status(self, camera: str, state: str, extra: dict) -> None:
        """A camera's state (`online`, `reconnecting`, `drift`, `offline` …) and its figures."""

    def bank(self, line: str, version: str) -> None:
        """Line `line` now scores against bank `version`."""

    def drift(self, line: str | None, camera: str, payload: dict) -> None:
        """A camera's drift was raised or cleared (payload: the window's statistics)."""

    def close(self, timeout: float | None = None) -> None:
        """The run has ended: deliver what is left (within `timeout` s when given)."""

    def summary_lines(self) -> list[str]:
        return []


class SummarySink(Sink):
    """Counts verdicts, results per camera and errors per camera (the summary and statuses read them)."""

    def __init__(self):
        self.verdicts: Counter = Counter()
        self.per_camera: Counter = Counter()
        self.errors_per_camera: Counter = Counter()
        self._lock = threading.Lock()

    @property
    def results(self) -> int:
        return sum(self.verdicts.values())

    def verdict(self, verdict: Verdict) -> None:
        kind = verdict.payload.get("verdict", "none")
        with self._lock:
            self.verdicts[kind] += 1
            self.per_camera[verdict.camera] += 1
            if kind == "error":
                self.errors_per_camera[verdict.camera] += 1

    def summary_lines(self) -> list[str]:
        return ["  verdicts: " + ", ".join(f"{self.verdicts[v]} {v}" for v in ("good", "defect", "error"))]


class EchoSink(Sink):
    """Each verdict as one JSON line on stdout (a run without a broker)."""

    def __init__(self, out=None):
        self.out = out

    def verdict(self, verdict: Verdict) -> None:
        (self.out or sys.stdout).write(json.dumps(verdict.payload) + "\n")


class SnapshotSink(Sink):
    """Keeps every defect frame's JPEG in a bounded folder (report/snapshots.SnapshotStore).

    The payload keeps the snapshot's name only if the file was written; a full or read-only disk is
    logged and the line goes on. Half-written files (*.part) of an earlier run go when it opens.
    """

    def __init__(self, folder: str | Path, quota_mb: float):
        from patchline.report.snapshots import SnapshotStore

        try:
            for partial in Path(folder).glob("*.part"):
                partial.unlink(missing_ok=True)
            self.store = SnapshotStore(folder, int(quota_mb * 1024 * 1024))
        except OSError as exc:
            raise ConfigError(f"cannot use {folder} for snapshots: {exc.strerror or exc}.") from None

    def verdict(self, verdict: Verdict) -> None:
        if verdict.snapshot is None:
            return
        saved = None
        try:
            saved = self.store.save(verdict.payload["snapshot"], verdict.snapshot)
        except OSError as exc:  # a full or read-only disk must not stop the line
            log.warning("snapshot %s not saved: %s", verdict.payload["snapshot"], exc)
        if saved is None:
            verdict.payload.pop("snapshot", None)
            verdict.snapshot = None



class MqttSink(Sink):
    """Each line's verdicts, alarms, statuses, bank version and drift through its own Publisher
    (mqtt/publisher.py); alarm snapshots too when `publish_snapshots`."""

    def __init__(self, options, publish_snapshots: bool = False, on_delivered=None):
        self.options = options  # run_settings.MqttSinkOptions
        self.publish_snapshots = publish_snapshots
        self.on_delivered = on_delivered
        self.publishers: dict = {}  # line → Publisher

    def start(self, cameras_by_line: dict[str, list[str]], bank_versions: dict[str, str]) -> None:
        """One Publisher per line (its spool in <spool>/<line>), connected in the background."""
        from patchline.mqtt.publisher import Publisher
        from patchline.paths import spool_root

        root = Path(self.options.spool_dir) if self.options.spool_dir else spool_root()
        for line, cameras in cameras_by_line.items():
            self.publishers[line] = Publisher(self.options.broker, line, cameras, root / line,
                                              on_delivered=self.on_delivered)
        for line, publisher in self.publishers.items():
            publisher.start()
            if bank_versions.get(line):
                publisher.publish_bank(bank_versions[line])

    def verdict(self, verdict: Verdict) -> None:
        publisher = self.publishers.get(verdict.line)
        if publisher is None:
            return
        if verdict.snapshot is not None and self.publish_snapshots:
            publisher.publish_snapshot(verdict.camera, verdict.snapshot)
        publisher.publish_result(verdict.payload)

    def status(self, camera: str, state: str, extra: dict) -> None:
        for publisher in self.publishers.values():
            if camera in publisher.cameras:
                publisher.set_status(camera, state, **extra)

    def bank(self, line: str, version: str) -> None:
        if line in self.publishers:
            self.publishers[line].publish_bank(version)

    def drift(self, line: str | None, camera: str, payload: dict) -> None:
        if line in self.publishers:
            self.publishers[line].publish_drift(camera, payload)

    def close(self, timeout: float | None = None) -> None:
        for publisher in self.publishers.values():
            publisher.close(self.options.publish_timeout if timeout is None else timeout)

    def summary_lines(self) -> list[str]:
        rows = []
        for line, publisher in self.publishers.items():
            s = publisher.stats()
            rows.append(f"  mqtt {line}: {s['delivered']} delivered, {s['queued']} queued, "
                        f"{s['dropped_verdicts']} verdicts dropped, {s['dropped_alarms']} alarms dropped, "
                        f"{s['spooled_alarms']} alarms spooled"
                        + (f", {s['unspooled_alarms']} alarms in memory only" if s["unspooled_alarms"] else "")
                        + (f", {s['lost_alarms']} alarms LOST (the spool could not write them)"
                           if s["lost_alarms"] else ""))
        return rows
