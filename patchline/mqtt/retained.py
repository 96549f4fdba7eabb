"""The retained state one Publisher keeps on the broker: each camera's status, the line's live
bank version, each camera's drift, and alarm snapshots waiting to go.

Pure bookkeeping (no network, no threads; the publisher calls it under its own lock): what changed
since it was last sent is "dirty" and goes again in the next batch; after a reconnect everything
goes again (a will may have replaced a status while the connection was away).
"""

from __future__ import annotations

from collections import deque

from patchline.timestamps import iso_utc
from patchline.mqtt.outbox import Message, Outbox
from patchline.mqtt.payload import encode_payload
from patchline.mqtt.topics import bank_topic, camera_topic

MAX_SNAPSHOTS = 32  # alarm JPEGs held in memory while the broker is away (each is also on disk)
# Counters repeated in every later status until changed; other fields last until the state changes.
LASTING_STATUS_KEYS = {"state", "bank_version", "fps", "dropped_frames", "errors", "source", "drift", "plc"}


class RetainedState:
    """Statuses, bank, drift and snapshots of one line, and which of them still have to be sent."""

    def __init__(self, line: str, host: str):
        self.line, self.host = line, host
        self.status: dict[str, dict] = {}
        self.bank: dict | None = None
        self.drift: dict[str, dict] = {}
        self.snapshots: deque[Message] = deque(maxlen=MAX_SNAPSHOTS)
        self.dropped_snapshots = 0
        self._dirty_status: set[str] = set()
        self._dirty_bank = False
        self._dirty_drift: set[str] = set()

    def starting(self, cameras) -> None:
        for cam in cameras:
            self.status.setdefault(cam, {"state": "starting"})
            self._dirty_status.add(cam)

    def set_status(self, camera: str, state: str, extra: dict) -> None:
        st = self.status.setdefault(camera, {})
        if st.get("state") != state:
            # Details such as reason / attempt / retry_in_s belong to the state they came with.
            for key in [k for k in st if k not in LASTING_STATUS_KEYS]:
                del st[key]
        st.update(extra)
        st["state"] = state
        self._dirty_status.add(camera)

    def offline(self, cameras, reason: str) -> None:
        for cam in cameras:
            st = self.status.setdefault(cam, {})
            st["state"], st["reason"] = "offline", reason
            self._dirty_status.add(cam)

    def set_bank(self, version: str) -> None:
        self.bank = {"line": self.line, "version": str(version), "timestamp": iso_utc()}
        self._dirty_bank = True
        for st in self.status.values():
            st["bank_version"] = str(version)
        self.resend_statuses()

    def set_drift(self, camera: str, payload: dict) -> None:
        self.drift[camera] = {"line": self.line, "camera": camera, "timestamp": iso_utc(), **payload}
        self._dirty_drift.add(camera)

    def add_snapshot(self, msg: Message) -> None:
        """Queue an alarm JPEG; beyond MAX_SNAPSHOTS the oldest waiting one is dropped (and counted)."""
        if len(self.snapshots) == self.snapshots.maxlen:
            self.dropped_snapshots += 1
        self.snapshots.append(msg)

    def resend_statuses(self) -> None:
        self._dirty_status.update(self.status)

    def resend_status(self, camera: str) -> None:
        if camera in self.status:
            self._dirty_status.add(camera)

    def reconnected(self) -> None:
        """Everything retained goes again: the broker may hold a will in its place."""
        self.resend_statuses()
        self._dirty_bank = self.bank is not None

    def pending(self) -> int:
        return len(self._dirty_status) + int(self._dirty_bank) + len(self._dirty_drift) + len(self.snapshots)

    def status_payload(self, camera: str, outbox: Outbox) -> bytes:
        """The camera's status message: its state and counters, the outbox's drop counters."""
        st = self.status.get(camera, {})
        counts = outbox.counts
        payload = {"state": st.get("state", "unknown"), "camera": camera, "line": self.line,
                   "bank_version": st.get("bank_version", self.bank["version"] if self.bank else None),
                   "fps": st.get("fps"), "dropped_frames": st.get("dropped_frames", 0),
                   "dropped_verdicts": counts["dropped_verdicts"], "dropped_alarms": counts["dropped_alarms"],
                   "unspooled_alarms": outbox.unspooled(),
                   "errors": st.get("errors", 0), "host": self.host, "timestamp": iso_utc()}
        payload.update({k: v for k, v in st.items() if k not in payload})
        return encode_payload(payload)

    def take(self, outbox: Outbox) -> list[Message]:
        """The dirty messages (statuses, bank, drift retained; then snapshots), now clean."""
        out = [outbox.message("status", camera_topic(self.line, cam, "status"), self.status_payload(cam, outbox),
                              retain=True) for cam in sorted(self._dirty_status)]
        self._dirty_status.clear()
        if self._dirty_bank:
            out.append(outbox.message("bank", bank_topic(self.line), encode_payload(self.bank), retain=True))
            self._dirty_bank = False
        for cam in sorted(self._dirty_drift):
            out.append(outbox.message("status", camera_topic(self.line, cam, "drift"),
                                      encode_payload(self.drift[cam]), retain=True))
        self._dirty_drift.clear()
        out += self.snapshots
        self.snapshots.clear()
        return out
