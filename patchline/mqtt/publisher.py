"""Publisher: one product line's verdicts, alarms, statuses and bank version over one connection.

It composes parts that each do one job (each tested alone): the outbox (outbox.py: what waits for
the broker, bounded, oldest dropped first), the alarm spool (spool.py: alarms on disk until
acknowledged), the retained state (retained.py: statuses, bank, drift, snapshots), the wills
(wills.py: every camera reads `offline` when the process dies) and the delivery pump (pump.py: the
thread that hands messages to paho). Publisher itself routes paho's callbacks to them and holds
the lock they share. After close() every camera's status reads `offline` (reason "closed") from a
normal retained publish.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from patchline.timestamps import iso_utc
from patchline.mqtt.broker import BrokerSettings, make_client
from patchline.mqtt.outbox import Message, Outbox
from patchline.mqtt.payload import encode_payload
from patchline.mqtt.pump import DeliveryPump
from patchline.mqtt.retained import RetainedState
from patchline.mqtt.spool import AlarmSpool
from patchline.mqtt.topics import camera_topic
from patchline.mqtt.wills import WillKeepers, set_main_will
from patchline.names import check_name

log = logging.getLogger("patchline.mqtt")


class Publisher:
    """Publishes verdicts, alarms, statuses and bank versions of one product line (QoS 1).

    `spool_dir` holds alarms not yet acknowledged by the broker; give every Publisher its own
    (it is locked against a second process). `max_verdicts` bounds the in-memory verdict queue,
    `max_alarms` the number of spooled alarms. `reconnect_delay` is (first, longest) seconds
    between connection attempts. `on_delivered(topic, data)` hears of every acknowledged message.
    """

    window = 64  # messages handed to paho and not yet acknowledged

    def __init__(self, settings: BrokerSettings, line: str, cameras: list[str], spool_dir: Path,
                 max_verdicts: int = 10000, max_alarms: int = 100000,
                 reconnect_delay: tuple[float, float] = (0.5, 10.0), on_delivered=None):
        self.settings, self.on_delivered = settings, on_delivered
        self.line = check_name(line, "line")
        self.cameras = list(dict.fromkeys(check_name(c, "camera") for c in cameras))
        self.client_id = f"patchline-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._cond = threading.Condition()
        self._outbox = Outbox(max_verdicts, max_alarms, self.window)
        self._retained = RetainedState(self.line, self.client_id)
        self._down_logged = self._closing = self._started = False
        self._spool = AlarmSpool(Path(spool_dir))
        self._spool.restore_into(self._outbox)
        self.client = make_client(settings, self.client_id)
        self.client.max_inflight_messages_set(self.window + 8)
        self.client.reconnect_delay_set(*reconnect_delay)
        set_main_will(self.client, self.line, self.cameras, self.client_id)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self._pump.acked(mid)
        self._wills = WillKeepers(settings, self.line, self.cameras, self.client_id, reconnect_delay,
                                  self._keeper_back)
        self._pump = DeliveryPump(self._cond, self._outbox, self._send, self._take_work_locked,
                                  self._has_work_locked, self._delivered)

    def __repr__(self) -> str:
        return f"Publisher(line={self.line!r}, cameras={self.cameras!r}, broker={self.settings.address})"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, not an error."""
        if self._started:
            return
        self._started = True
        with self._cond:
            self._retained.starting(self.cameras)
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self.client.loop_start()
        self._wills.start()
        self._pump.start()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout` s, mark every camera offline, disconnect.

        Alarms still unacknowledged stay in the spool for the next start; verdicts still queued
        are counted as dropped; alarms the spool refused are tried once more, then counted as lost.
        """
        if self._pump.stopped:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        status_reserve = min(1.0, timeout / 4)
        with self._cond:
            self._closing = True
            if self._started:
                self._cond.wait_for(lambda: self._outbox.pending() == 0,
                                    max(0.0, deadline - status_reserve - time.monotonic()))
            self._retained.offline(self.cameras, "closed")
            self._cond.notify_all()
            if self._started:
                self._cond.wait_for(lambda: self._pending_locked() == 0, max(0.0, deadline - time.monotonic()))
        self._pump.stop(2.0)
        if self._started:
            self.client.disconnect()  # a clean disconnect: the broker discards the will
            self.client.loop_stop()
            self._wills.stop()
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
                self._retained.resend_statuses()
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
            self._retained.set_status(camera, state, extra)
            self._cond.notify_all()

    def publish_bank(self, version: str) -> None:
        """Publish the live bank version, retained on `patchline/<line>/bank`."""
        with self._cond:
            self._retained.set_bank(version)
            self._cond.notify_all()

    def publish_drift(self, camera: str, payload: dict) -> None:
        """Publish a camera's drift state (raised or cleared, with its statistics), retained on
        `patchline/<line>/<camera>/drift`."""
        check_name(camera, "camera")
        with self._cond:
            self._retained.set_drift(camera, payload)
            self._cond.notify_all()

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """Queue an alarm's JPEG for `patchline/<line>/<camera>/snapshot` (QoS 1, not retained).

        Sent ahead of results queued after it, so it reaches subscribers before its alarm. At most
        MAX_SNAPSHOTS wait while the broker is away (the oldest dropped: the files stay on disk)."""
        topic = camera_topic(self.line, camera, "snapshot")
        with self._cond:
            self._retained.add_snapshot(self._outbox.message("snapshot", topic, jpeg))
            self._cond.notify_all()

    def stats(self) -> dict:
        """Counters: queued (waiting or unacknowledged), delivered, dropped_verdicts, dropped_alarms,
        spool_errors, spooled_alarms (with a spool file), unspooled_alarms (in memory only: the spool
        refused them), lost_alarms (unspooled at close), dropped_snapshots, connected; all counted."""
        with self._cond:
            return {"queued": self._outbox.pending(), **self._outbox.counts,
                    "spooled_alarms": self._outbox.spooled(), "unspooled_alarms": self._outbox.unspooled(),
                    "dropped_snapshots": self._retained.dropped_snapshots, "connected": self._pump.connected}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued message is acknowledged; True if that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_locked() == 0, timeout)

    # -- internals (self._cond held where the name ends in _locked) ---------------------------

    def _pending_locked(self) -> int:
        return self._outbox.pending(include_status=True) + self._retained.pending()

    def _take_work_locked(self) -> list[Message]:
        return self._outbox.take(self._retained.take(self._outbox))

    def _has_work_locked(self) -> bool:
        return bool(self._retained.pending() or self._outbox.has_results_to_send())

    def _send(self, msg: Message) -> tuple[int, int]:
        info = self.client.publish(msg.topic, msg.data, qos=1, retain=msg.retain)
        return info.rc, info.mid

    def _keeper_back(self, camera: str) -> None:
        with self._cond:
            self._retained.resend_status(camera)
            self._cond.notify_all()

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
            self._pump.connected = True
            self._down_logged = False
            self._retained.reconnected()  # retained statuses may have been replaced by the will
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
            self._pump.connected = False
            closing = self._closing
            first = not self._down_logged
            self._down_logged = True
            self._cond.notify_all()
        if not closing and first:
            log.warning("MQTT connection to %s lost (%s); queueing results and reconnecting",
                        self.settings.address, reason_code)

    def _delivered(self, msg: Message) -> None:
        """Acknowledged (PUBACK): the spool file goes, on_delivered hears of it (its errors are only logged)."""
        self._spool.remove(msg.path)
        try:
            self.on_delivered and self.on_delivered(msg.topic, msg.data)
        except Exception:
            log.exception("on_delivered failed for a message on %s", msg.topic)
