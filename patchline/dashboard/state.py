"""What the dashboard knows, built from MQTT messages alone: per camera its status, recent scores,
counts and last alarms; the alarm snapshots received; whether the broker is there.

Thread-safe: the MQTT network thread writes, the web server reads `view()`. Every change bumps
`version`, so the server pushes only when something changed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from patchline.mqtt.payload import decode_object
from patchline.report.snapshots import snapshot_identity

RECENT_SCORES = 120    # points in a camera's live score strip
RECENT_ALARMS = 8      # alarms listed per camera
KEPT_SNAPSHOTS = 64    # JPEGs held in memory for the page, newest kept
_STATUS_FIELDS = ("state", "fps", "bank_version", "dropped_frames", "dropped_verdicts", "dropped_alarms", "errors",
                  "reason", "timestamp", "host")


class CameraView:
    """One camera of one line, as its messages describe it."""

    def __init__(self, line: str, camera: str):
        self.line, self.camera = line, camera
        self.status: dict = {"state": "unknown"}
        self.scores: deque = deque(maxlen=RECENT_SCORES)  # (score, threshold, verdict)
        self.alarms: deque = deque(maxlen=RECENT_ALARMS)
        self.counts = {"verdicts": 0, "alarms": 0, "errors": 0}
        self.threshold: float | None = None
        self.drift: dict | None = None

    def as_dict(self) -> dict:
        return {"line": self.line, "camera": self.camera, "status": dict(self.status),
                "scores": [list(s) for s in self.scores], "threshold": self.threshold,
                "alarms": list(self.alarms)[::-1], "counts": dict(self.counts), "drift": self.drift}


class DashboardState:
    """Every camera seen on the broker, the bank versions, the snapshots, and the broker's state."""

    def __init__(self):
        self._lock = threading.Lock()
        self.version = 0
        self.cameras: dict[tuple[str, str], CameraView] = {}
        self.banks: dict[str, str] = {}
        self.snapshots: OrderedDict[str, bytes] = OrderedDict()
        self.broker = {"connected": False, "since": time.time(), "reason": "connecting"}

    def set_broker(self, connected: bool, reason: str = "") -> None:
        """The feed's connection changed: connected, or gone with a reason."""
        with self._lock:
            self.broker = {"connected": connected, "since": time.time(), "reason": reason}
            self.version += 1

    def on_message(self, topic: str, raw: bytes) -> None:
        """One message of patchline/<line>/…: verdict, alarm, status, drift, snapshot, bank."""
        parts = topic.split("/")
        if len(parts) == 3 and parts[2] == "bank":
            payload = decode_object(raw)
            if payload is not None:
                with self._lock:
                    self.banks[parts[1]] = str(payload.get("version"))
                    self.version += 1
            return
        if len(parts) != 4 or parts[2] == "_host":
            return
        line, camera, kind = parts[1], parts[2], parts[3]
        if kind == "snapshot":
            self._keep_snapshot(raw)
            return
        payload = decode_object(raw)
        if payload is None:
            return
        with self._lock:
            view = self.cameras.get((line, camera))
            if view is None:
                view = self.cameras[(line, camera)] = CameraView(line, camera)
            if kind == "verdict":
                self._add_verdict(view, payload)
            elif kind == "alarm":
                view.counts["alarms"] += 1
                view.alarms.append({k: payload.get(k) for k in ("frame_id", "timestamp", "score", "threshold",
                                                                "region", "snapshot", "source", "bank_version")})
            elif kind == "status":
                view.status = {k: payload[k] for k in _STATUS_FIELDS if k in payload}
            elif kind == "drift":
                view.drift = {k: payload.get(k) for k in ("drift", "reasons", "median", "p99", "alarm_rate")}
            else:
                return
            self.version += 1

    @staticmethod
    def _add_verdict(view: CameraView, payload: dict) -> None:
        view.counts["verdicts"] += 1
        if payload.get("verdict") == "error":
            view.counts["errors"] += 1
        score, threshold = payload.get("score"), payload.get("threshold")
        if isinstance(score, (int, float)):
            view.scores.append((float(score), threshold, payload.get("verdict")))
        if isinstance(threshold, (int, float)):
            view.threshold = float(threshold)

    def _keep_snapshot(self, raw: bytes) -> None:
        identity = snapshot_identity(raw)
        name = identity.get("name") if identity else None
        if not isinstance(name, str) or "/" in name:
            return
        with self._lock:
            self.snapshots[name] = bytes(raw)
            self.snapshots.move_to_end(name)
            while len(self.snapshots) > KEPT_SNAPSHOTS:
                self.snapshots.popitem(last=False)
            self.version += 1

    def snapshot(self, name: str) -> bytes | None:
        """A received alarm JPEG by the name its alarm gives, or None."""
        with self._lock:
            return self.snapshots.get(name)

    def view(self) -> dict:
        """Everything the page draws, JSON-able: broker, banks, cameras (sorted), snapshot names held."""
        with self._lock:
            return {"version": self.version, "broker": dict(self.broker), "banks": dict(self.banks),
                    "cameras": [v.as_dict() for _, v in sorted(self.cameras.items())],
                    "snapshots": list(self.snapshots)}
