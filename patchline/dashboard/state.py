"""What the dashboard knows, built from MQTT messages alone: per camera its status, recent scores,
counts and last alarms; the alarm snapshots received; whether the broker is there.

Every message is untrusted: it goes through the one payload decoder (mqtt/payload.py) and the
dashboard's field cleaning (sanitize.py); a refused one is counted, never raised. The state is
bounded whatever arrives: at most MAX_CAMERAS cameras (the one heard from longest ago forgotten
first), MAX_LINES bank versions, a fixed number of scores and alarms per camera, and at most
KEPT_SNAPSHOTS JPEGs of at most MAX_SNAPSHOT_BYTES each, SNAPSHOT_BUDGET bytes in all.

Thread-safe: the MQTT network thread writes, the web server reads `view()`. Every change bumps
`version`; each camera remembers the version it last changed at, so `view(since)` sends only the
cameras that changed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from patchline.dashboard import sanitize
from patchline.mqtt.payload import PayloadCounter, PayloadError, decode_payload
from patchline.names import check_name
from patchline.errors import ConfigError

RECENT_SCORES = 120    # points in a camera's live score strip
RECENT_ALARMS = 8      # alarms listed per camera
MAX_CAMERAS = 500      # cameras kept; beyond, the one heard from longest ago is forgotten
MAX_LINES = 200        # bank versions kept (one per line)
KEPT_SNAPSHOTS = 64    # JPEGs held in memory for the page, newest kept
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
SNAPSHOT_BUDGET = 48 * 1024 * 1024


class CameraView:
    """One camera of one line, as its messages describe it (every field already cleaned)."""

    def __init__(self, line: str, camera: str):
        self.line, self.camera = line, camera
        self.status: dict = {"state": "unknown"}
        self.scores: deque = deque(maxlen=RECENT_SCORES)  # (score, verdict)
        self.alarms: deque = deque(maxlen=RECENT_ALARMS)
        self.counts = {"verdicts": 0, "alarms": 0, "errors": 0}
        self.threshold: float | None = None
        self.drift: dict | None = None
        self.changed = 0

    def as_dict(self) -> dict:
        """The camera as the page draws it."""
        return {"line": self.line, "camera": self.camera, "status": dict(self.status),
                "scores": [list(s) for s in self.scores], "threshold": self.threshold,
                "alarms": list(self.alarms)[::-1], "counts": dict(self.counts), "drift": self.drift}


def _names(topic: str) -> list[str] | None:
    """The topic's levels when its line and camera levels are valid names, else None."""
    parts = topic.split("/")
    if len(parts) not in (3, 4):
        return None
    try:
        check_name(parts[1], "line")
        if len(parts) == 4:
            check_name(parts[2], "camera")
    except ConfigError:
        return None
    return parts


class DashboardState:
    """Every camera seen on the broker, the bank versions, the snapshots, and the broker's state."""

    def __init__(self):
        self._lock = threading.Lock()
        self.version = 0
        self.cameras: OrderedDict[tuple[str, str], CameraView] = OrderedDict()  # least recently heard first
        self.cameras_version = 0   # the version at which the set of cameras last changed
        self.banks: dict[str, str] = {}
        self.snapshots: OrderedDict[str, bytes] = OrderedDict()
        self.broker = {"connected": False, "since": time.time(), "reason": "connecting"}
        self.payloads = PayloadCounter()
        self.forgotten_cameras = 0

    def set_broker(self, connected: bool, reason: str = "") -> None:
        """The feed's connection changed: connected, or gone with a reason."""
        with self._lock:
            self.broker = {"connected": connected, "since": time.time(), "reason": sanitize.text(reason) or ""}
            self.version += 1

    def on_message(self, topic: str, raw: bytes) -> None:
        """One message of patchline/<line>/…: verdict, alarm, status, drift, snapshot, bank.

        Never raises for what a message holds: a refused one is counted in `payloads`."""
        parts = _names(topic)
        if parts is None or (len(parts) == 3 and parts[2] != "bank"):
            return
        if len(parts) == 4 and parts[3] == "snapshot":
            self._keep_snapshot(raw)
            return
        if len(parts) == 4 and parts[3] not in ("verdict", "alarm", "status", "drift"):
            return
        payload = self.payloads.decode(raw)
        if payload is None:
            with self._lock:
                self.version += 1  # the refused count is shown
            return
        with self._lock:
            if len(parts) == 3:
                self._set_bank(parts[1], payload)
            else:
                self._apply(self._camera(parts[1], parts[2]), parts[3], payload)
            self.version += 1

    def _set_bank(self, line: str, payload: dict) -> None:
        version = sanitize.text(payload.get("version"))
        if version is None:
            return
        self.banks.pop(line, None)
        self.banks[line] = version
        while len(self.banks) > MAX_LINES:
            self.banks.pop(next(iter(self.banks)))

    def _camera(self, line: str, camera: str) -> CameraView:
        key = (line, camera)
        view = self.cameras.get(key)
        if view is None:
            view = self.cameras[key] = CameraView(line, camera)
            self.cameras_version = self.version + 1
            while len(self.cameras) > MAX_CAMERAS:
                self.cameras.popitem(last=False)
                self.forgotten_cameras += 1
        self.cameras.move_to_end(key)
        view.changed = self.version + 1
        return view

    @staticmethod
    def _apply(view: CameraView, kind: str, payload: dict) -> None:
        if kind == "verdict":
            view.counts["verdicts"] += 1
            if payload.get("verdict") == "error":
                view.counts["errors"] += 1
            point = sanitize.verdict_point(payload)
            if point is not None:
                view.scores.append(point)
            threshold = sanitize.number(payload.get("threshold"))
            if threshold is not None:
                view.threshold = float(threshold)
        elif kind == "alarm":
            view.counts["alarms"] += 1
            view.alarms.append(sanitize.alarm(payload))
        elif kind == "status":
            view.status = sanitize.status(payload)
        else:
            view.drift = sanitize.drift(payload)

    def _keep_snapshot(self, raw: bytes) -> None:
        name = _snapshot_name(raw) if len(raw) <= MAX_SNAPSHOT_BYTES else None
        if name is None:
            self.payloads.refuse(f"a snapshot was not a patchline JPEG of at most {MAX_SNAPSHOT_BYTES} bytes.")
            with self._lock:
                self.version += 1
            return
        with self._lock:
            self.snapshots[name] = bytes(raw)
            self.snapshots.move_to_end(name)
            total = sum(len(v) for v in self.snapshots.values())
            while len(self.snapshots) > KEPT_SNAPSHOTS or total > SNAPSHOT_BUDGET:
                total -= len(self.snapshots.popitem(last=False)[1])
            self.version += 1

    def snapshot(self, name: str) -> bytes | None:
        """A received alarm JPEG by the name its alarm gives, or None."""
        with self._lock:
            return self.snapshots.get(name)

    def view(self, since: int | None = None) -> dict:
        """What the page draws, JSON-able (finite numbers only): broker, banks, refused messages,
        snapshot names held, and the cameras: all of them, or with `since` only those changed
        after that version. `keys` (every camera's line/camera) comes whenever the set of cameras
        changed after `since`."""
        with self._lock:
            changed = [v for v in self.cameras.values() if since is None or v.changed > since]
            out = {"version": self.version, "full": since is None, "broker": dict(self.broker),
                   "banks": dict(self.banks), "snapshots": list(self.snapshots),
                   "refused": {"messages": self.payloads.refused, "last_reason": self.payloads.last_reason},
                   "forgotten_cameras": self.forgotten_cameras,
                   "cameras": [v.as_dict() for v in sorted(changed, key=lambda v: (v.line, v.camera))]}
            if since is None or self.cameras_version > since:
                out["keys"] = sorted(f"{line}/{camera}" for line, camera in self.cameras)
            return out


def _snapshot_name(jpeg: bytes) -> str | None:
    """The file name a patchline snapshot carries in its JPEG comment (see report/snapshots.py),
    read with the one payload decoder; None when the JPEG is not one of ours."""
    if len(jpeg) < 6 or jpeg[:4] != b"\xff\xd8\xff\xfe":
        return None
    length = int.from_bytes(jpeg[4:6], "big")
    try:
        identity = decode_payload(jpeg[6:4 + length])
    except PayloadError:
        return None
    return sanitize.snapshot_name(identity.get("name"))
