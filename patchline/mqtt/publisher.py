"""Publisher: one product line's verdicts, alarms, statuses and bank version over one connection.

Last Will: MQTT allows one will per connection, and a status topic must read `offline` when
the process dies, whatever the number of cameras. The publishing connection carries the will
for the first camera's status; every further camera gets a small idle "will keeper" connection
whose only job is to carry that camera's will. So after a kill -9 or a network loss every
`patchline/<line>/<camera>/status` reads `offline` (reason "connection lost"); after close()
every one reads `offline` (reason "closed") from a normal retained publish.

While the broker is away, results wait in the outbox (outbox.py: bounded, oldest dropped first)
and alarms also in the on-disk spool (spool.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import paho.mqtt.client as mqtt

from patchline.formats import iso_utc
from patchline.mqtt.broker import BrokerSettings, make_client
from patchline.mqtt.outbox import Message, Outbox
from patchline.mqtt.payload import encode_payload
from patchline.mqtt.spool import AlarmSpool
from patchline.mqtt.topics import bank_topic, camera_topic, host_status_topic
from patchline.names import check_name

MAX_SNAPSHOTS = 32  # alarm JPEGs held in memory while the broker is away (each is also on disk)

log = logging.getLogger("patchline.mqtt")

_LASTING_STATUS_KEYS = {"state", "bank_version", "fps", "dropped_frames", "errors", "source", "drift"}


class Publisher:
    """Publishes verdicts, alarms, statuses and bank versions of one product line (QoS 1).

    `spool_dir` holds alarms not yet acknowledged by the broker; give every Publisher its own
    (it is locked against a second process). `max_verdicts` bounds the in-memory verdict queue,
    `max_alarms` the number of spooled alarms. `reconnect_delay` is (first, longest) seconds
    between connection attempts. `on_delivered(topic, data)` hears of every acknowledged message.
    """

    window = 64  # messages handed to paho and not yet acknowledged

    def __init__(self, settings: BrokerSettings, line: str, cameras: list[str], spool_dir: Path,
                 max_verdicts: int = 10000, max_alarms: int = 100000, client_id: str | None = None,
                 reconnect_delay: tuple[float, float] = (0.5, 10.0), on_delivered=None):
        self.settings, self.on_delivered = settings, on_delivered
        self.line = check_name(line, "line")
        self.cameras = list(dict.fromkeys(check_name(c, "camera") for c in cameras))
        self.client_id = client_id or f"patchline-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.reconnect_delay = reconnect_delay
        self.spool_dir = Path(spool_dir)

        self._cond = threading.Condition()
        self._outbox = Outbox(max_verdicts, max_alarms, self.window)
        self._status: dict[str, dict] = {}
        self._status_dirty: set[str] = set()
        self._bank: dict | None = None
        self._bank_dirty = False
        self._drift: dict[str, dict] = {}
        self._drift_dirty: set[str] = set()
        self._snapshots: deque[Message] = deque(maxlen=MAX_SNAPSHOTS)  # alarm JPEGs waiting for the broker
        self.dropped_snapshots = 0
        self._connected = False
        self._down_logged = False
        self._closing = False
        self._stopped = False
        self._started = False
        self._pump: threading.Thread | None = None

        self._spool = AlarmSpool(self.spool_dir)
        self._spool.restore_into(self._outbox)
        self.client = make_client(settings, self.client_id)
        self.client.max_inflight_messages_set(self.window + 8)
        self.client.reconnect_delay_set(*reconnect_delay)
        first = self.cameras[0] if self.cameras else None
        will_topic = self.status_topic(first) if first else host_status_topic(self.line, self.client_id)
        self.client.will_set(will_topic, self._will_payload(first), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._keepers = [self._will_keeper(cam) for cam in self.cameras[1:]]

    def __repr__(self) -> str:
        return f"Publisher(line={self.line!r}, cameras={self.cameras!r}, broker={self.settings.address})"

    @property
    def max_verdicts(self) -> int:
        return self._outbox.max_verdicts

    @property
    def max_alarms(self) -> int:
        return self._outbox.max_alarms

    def status_topic(self, camera: str) -> str:
        """`patchline/<line>/<camera>/status`."""
        return camera_topic(self.line, camera, "status")

    def _will_payload(self, camera: str | None) -> bytes:
        return encode_payload({"state": "offline", "camera": camera, "line": self.line,
                               "reason": "connection lost", "host": self.client_id})

    def _will_keeper(self, camera: str) -> mqtt.Client:
        client = make_client(self.settings, f"{self.client_id}-will-{camera}"[:200])
        client.reconnect_delay_set(*self.reconnect_delay)
        client.will_set(self.status_topic(camera), self._will_payload(camera), qos=1, retain=True)

        def on_connect(_c, _u, _f, reason_code, _p):
            # Its will may have fired while it was away: restate the camera's real status.
            if not reason_code.is_failure:
                with self._cond:
                    if camera in self._status:
                        self._status_dirty.add(camera)
                    self._cond.notify_all()

        client.on_connect = on_connect
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, not an error."""
        if self._started:
            return
        self._started = True
        for cam in self.cameras:
            self._status.setdefault(cam, {"state": "starting"})
            self._status_dirty.add(cam)
        for client in [self.client, *self._keepers]:
            client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
            client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name="patchline-mqtt", daemon=True)
        self._pump.start()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout` s, mark every camera offline, disconnect.

        Alarms still unacknowledged stay in the spool for the next start; verdicts still queued
        are counted as dropped; alarms the spool refused are tried once more, then counted as lost.
        """
        if self._stopped:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        status_reserve = min(1.0, timeout / 4)
        with self._cond:
            self._closing = True
            if self._started:
                self._cond.wait_for(lambda: self._outbox.pending() == 0,
                                    max(0.0, deadline - status_reserve - time.monotonic()))
            for cam in self.cameras:
                self._status.setdefault(cam, {})
                self._status[cam]["state"] = "offline"
                self._status[cam]["reason"] = "closed"
                self._status_dirty.add(cam)
            self._cond.notify_all()
            if self._started:
                self._cond.wait_for(lambda: self._pending_locked(include_status=True) == 0,
                                    max(0.0, deadline - time.monotonic()))
            self._stopped = True
            self._cond.notify_all()
        if self._pump is not None:
            self._pump.join(2.0)
        for client in [self.client, *self._keepers]:
            if self._started:
                client.disconnect()  # a clean disconnect: the broker discards the will
                client.loop_stop()
        # Every other thread has stopped: the disk may have room again for the alarms it refused.
        self._spool.write_again(self._outbox.memory_only())
        left_verdicts, left_alarms, lost = self._outbox.drop_undelivered()
        self._spool.say_closed(self.settings.address, left_verdicts, left_alarms, lost)
        self._spool.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- publishing --------------------------------------------------------------------------

    def publish_result(self, payload: dict) -> None:
        """Queue one pipeline result: `…/verdict` always, `…/alarm` too when verdict == 'defect'.

        Non-blocking (an alarm is written to the spool first, a small local file write).
        """
        camera = check_name(str(payload.get("camera", "")), "camera")
        payload = {"line": self.line, "timestamp": iso_utc(), **payload}
        data = encode_payload(payload)
        with self._cond:
            alarm = None
            if payload.get("verdict") == "defect":
                alarm = self._outbox.message("alarm", camera_topic(self.line, camera, "alarm"), data)
            verdict = self._outbox.message("verdict", camera_topic(self.line, camera, "verdict"), data)
        if alarm is not None:
            alarm.path = self._spool.write(alarm.topic, data, alarm.seq)
        dropped_files = []
        with self._cond:
            if alarm is not None and alarm.path is None:  # said in the log and in every status
                self._outbox.counts["spool_errors"] += 1
                self._status_dirty.update(self._status)
            self._outbox.add_verdict(verdict)
            if alarm is not None:
                dropped_files = self._outbox.add_alarm(alarm)
            refusals, unspooled = self._outbox.counts["spool_errors"], self._outbox.unspooled()
            self._cond.notify_all()
        for path in dropped_files:
            self._spool.remove(path)
        if alarm is not None and alarm.path is None:
            self._spool.say_refused(refusals, unspooled, self._outbox.max_unspooled)

    def set_status(self, camera: str, state: str, **extra) -> None:
        """Set a camera's retained status (`online`, `offline`, `reconnecting`, …).

        Counters (bank_version, fps, dropped_frames, errors, source) are kept and repeated in
        later statuses until changed; other extra fields (reason, attempt, …) last until the
        state changes. Re-published after every reconnect.
        """
        check_name(camera, "camera")
        with self._cond:
            st = self._status.setdefault(camera, {})
            if st.get("state") != state:
                # Details such as reason / attempt / retry_in_s belong to the state they came with.
                for key in [k for k in st if k not in _LASTING_STATUS_KEYS]:
                    del st[key]
            st.update(extra)
            st["state"] = state
            self._status_dirty.add(camera)
            self._cond.notify_all()

    def publish_bank(self, version: str) -> None:
        """Publish the live bank version, retained on `patchline/<line>/bank`."""
        with self._cond:
            self._bank = {"line": self.line, "version": str(version), "timestamp": iso_utc()}
            self._bank_dirty = True
            for st in self._status.values():
                st["bank_version"] = str(version)
            self._status_dirty.update(self._status)
            self._cond.notify_all()

    def publish_drift(self, camera: str, payload: dict) -> None:
        """Publish a camera's drift state (raised or cleared, with its statistics), retained on
        `patchline/<line>/<camera>/drift`."""
        check_name(camera, "camera")
        with self._cond:
            self._drift[camera] = {"line": self.line, "camera": camera, "timestamp": iso_utc(), **payload}
            self._drift_dirty.add(camera)
            self._cond.notify_all()

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """Queue an alarm's JPEG for `patchline/<line>/<camera>/snapshot` (QoS 1, not retained).

        Sent ahead of results queued after it, so it reaches subscribers before its alarm. At most
        MAX_SNAPSHOTS wait while the broker is away (the oldest dropped: the files stay on disk)."""
        topic = camera_topic(self.line, camera, "snapshot")
        with self._cond:
            if len(self._snapshots) == self._snapshots.maxlen:
                self.dropped_snapshots += 1
            self._snapshots.append(self._outbox.message("snapshot", topic, jpeg))
            self._cond.notify_all()

    def stats(self) -> dict:
        """Counters: queued (waiting or unacknowledged), delivered, dropped_verdicts, dropped_alarms,
        spool_errors, spooled_alarms (with a spool file), unspooled_alarms (in memory only: the spool
        refused them), lost_alarms (unspooled at close), dropped_snapshots, connected; all counted."""
        with self._cond:
            return {"queued": self._outbox.pending(), **self._outbox.counts,
                    "spooled_alarms": self._outbox.spooled(), "unspooled_alarms": self._outbox.unspooled(),
                    "dropped_snapshots": self.dropped_snapshots, "connected": self._connected}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged; True if that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_locked(include_status=True) == 0, timeout)

    # -- internals (self._cond held where the name ends in _locked) ---------------------------

    def _pending_locked(self, include_status: bool = False) -> int:
        n = self._outbox.pending(include_status)
        if include_status:
            n += len(self._status_dirty) + int(self._bank_dirty) + len(self._drift_dirty) + len(self._snapshots)
        return n

    def _status_payload_locked(self, camera: str) -> bytes:
        st = self._status.get(camera, {})
        counts = self._outbox.counts
        payload = {"state": st.get("state", "unknown"), "camera": camera, "line": self.line,
                   "bank_version": st.get("bank_version", self._bank["version"] if self._bank else None),
                   "fps": st.get("fps"), "dropped_frames": st.get("dropped_frames", 0),
                   "dropped_verdicts": counts["dropped_verdicts"], "dropped_alarms": counts["dropped_alarms"],
                   "unspooled_alarms": self._outbox.unspooled(),
                   "errors": st.get("errors", 0), "host": self.client_id, "timestamp": iso_utc()}
        payload.update({k: v for k, v in st.items() if k not in payload})
        return encode_payload(payload)

    def _take_work_locked(self) -> list[Message]:
        first = [self._outbox.message("status", self.status_topic(cam), self._status_payload_locked(cam), retain=True)
                 for cam in sorted(self._status_dirty)]
        self._status_dirty.clear()
        if self._bank_dirty:
            first.append(self._outbox.message("bank", bank_topic(self.line), encode_payload(self._bank), retain=True))
            self._bank_dirty = False
        for cam in sorted(self._drift_dirty):
            first.append(self._outbox.message("status", camera_topic(self.line, cam, "drift"),
                                              encode_payload(self._drift[cam]), retain=True))
        self._drift_dirty.clear()
        first += self._snapshots
        self._snapshots.clear()
        return self._outbox.take(first)

    def _has_work_locked(self) -> bool:
        return bool(self._status_dirty or self._bank_dirty or self._drift_dirty or self._snapshots
                    or self._outbox.has_results_to_send())

    def _pump_loop(self) -> None:
        # paho's on_publish runs under paho's own lock; so this thread never calls paho while
        # holding self._cond, and the callbacks only take self._cond briefly.
        while True:
            with self._cond:
                while not (self._stopped or (self._connected and self._has_work_locked())):
                    self._cond.wait(0.5)
                if self._stopped:
                    return
                work = self._take_work_locked()
            for msg in work:
                info = self.client.publish(msg.topic, msg.data, qos=1, retain=msg.retain)
                with self._cond:
                    # MQTT_ERR_QUEUE_SIZE is not expected (paho's queue is unbounded): send it again later.
                    done = self._outbox.handed(msg, info.mid, queue_full=info.rc == mqtt.MQTT_ERR_QUEUE_SIZE)
                    self._cond.notify_all()
                if done is not None:
                    self._delivered(done)

    # -- paho callbacks (paho's network thread) -------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            with self._cond:
                first = not self._down_logged
                self._down_logged = True
            if first:  # paho retries with back-off; one line per outage is enough
                log.error("MQTT broker %s refused the connection: %s; results are queued and the login retried",
                          self.settings.address, reason_code)
            return
        log.info("MQTT connected to %s as %s", self.settings.address, self.client_id)
        with self._cond:
            self._connected = True
            self._down_logged = False
            # Retained statuses may have been replaced by the will while we were away.
            self._status_dirty.update(self._status)
            if self._bank is not None:
                self._bank_dirty = True
            self._cond.notify_all()

    def _on_connect_fail(self, client, userdata):
        with self._cond:
            first = not self._down_logged
            self._down_logged = True
        if first:
            log.warning("MQTT broker %s is not reachable; queueing results and retrying in the background",
                        self.settings.address)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._cond:
            self._connected = False
            closing = self._closing
            first = not self._down_logged
            self._down_logged = True
            self._cond.notify_all()
        if not closing and first:
            log.warning("MQTT connection to %s lost (%s); queueing results and reconnecting",
                        self.settings.address, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cond:
            msg = self._outbox.acked(mid)
            self._cond.notify_all()
        if msg is not None:
            self._delivered(msg)

    def _delivered(self, msg: Message) -> None:
        """Acknowledged (PUBACK): the spool file goes, on_delivered hears of it (its errors are only logged)."""
        self._spool.remove(msg.path)
        try:
            self.on_delivered and self.on_delivered(msg.topic, msg.data)
        except Exception:
            log.exception("on_delivered failed for a message on %s", msg.topic)
