"""Triggered capture over MQTT: a photo-eye, a PLC's MQTT bridge or an operator's button publishes
to `patchline/<camera>/capture` when a part is in place, and capture keeps the first frame taken
after the message (if it passes the quality checks). The payload is empty or a JSON object whose
`id` (a string of at most 64 characters or a whole number) is echoed in the reply:

    patchline/<camera>/capture        in:  {} or {"id": "part-0042"}
    patchline/<camera>/capture/reply  out: {"id": "part-0042", "saved": "cam1-20261206T071455.123Z-000042.png"}
                                           {"id": …, "skipped": "blurred", "detail": "sharpness 3.1 below …"}

One trigger waits at a time: a trigger while another waits for its frame is an overrun (answered,
counted, never merged). A trigger no frame answers within `expire_s` (a camera that stalled) is
answered 'no frame'. Payloads are untrusted: at most 1 KiB, anything else is refused and counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from patchline.errors import PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import decode_payload, encode_payload
from patchline.mqtt.subscriber import Subscriber
from patchline.names import check_name

log = logging.getLogger("patchline.capture")

MAX_TRIGGER_BYTES = 1024


def capture_topic(camera: str) -> str:
    """`patchline/<camera>/capture`: where capture's triggers arrive (the reply is on `…/reply`)."""
    return f"patchline/{check_name(camera, 'camera')}/capture"


@dataclass
class Trigger:
    """One trigger: when it arrived (unix seconds) and the id to echo (None when it had none)."""

    received: float
    id: str | int | None


def trigger_id(raw: bytes) -> str | int | None:
    """The id of a trigger payload (empty, or a JSON object with an optional short `id`); raises
    PatchlineError (one sentence) for anything else."""
    if not raw.strip():
        return None
    request = decode_payload(raw, max_bytes=MAX_TRIGGER_BYTES, max_depth=4)
    value = request.get("id")
    if value is None or (isinstance(value, str) and len(value) <= 64):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PatchlineError("the trigger's id must be a string of at most 64 characters or a whole number.")


class MqttTriggers:
    """Listens on `patchline/<camera>/capture`; `take(frame_time)` hands the waiting trigger to a
    frame taken after it; `answer(trigger, reply)` publishes the reply."""

    def __init__(self, broker: BrokerSettings, camera: str, expire_s: float = 5.0):
        self.topic = capture_topic(camera)
        self.expire_s = float(expire_s)
        self.received = self.overruns = self.refused = self.expired = 0
        self._waiting: Trigger | None = None
        self._lock = threading.Lock()
        self._subscriber = Subscriber(broker, self.topic, self._on_message,
                                      client_id=f"patchline-capture-{uuid.uuid4().hex[:8]}")

    def start(self) -> "MqttTriggers":
        """Connect and subscribe (PatchlineError when the broker cannot be reached)."""
        self._subscriber.start()
        log.info("waiting for capture triggers on %s at %s", self.topic, self._subscriber.settings.address)
        return self

    def close(self) -> None:
        """Answer a trigger still waiting ('stopped') and disconnect."""
        with self._lock:
            waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.answer(waiting, {"skipped": "stopped", "detail": "capture stopped before a frame came"}, wait=True)
        self._subscriber.close()

    def _on_message(self, _topic: str, raw: bytes, retained: bool) -> None:
        if retained:  # a trigger left on the broker is not a part in front of the camera now
            return
        now = time.time()
        try:
            ident = trigger_id(raw)
        except PatchlineError as exc:
            self.refused += 1
            log.warning("capture trigger refused: %s", exc)
            self._publish({"id": None, "skipped": "refused", "detail": str(exc)})
            return
        with self._lock:
            self.received += 1
            busy = self._waiting is not None
            if not busy:
                self._waiting = Trigger(now, ident)
        if busy:
            self.overruns += 1
            log.warning("capture trigger %s arrived while another waits for its frame: overrun", ident)
            self._publish({"id": ident, "skipped": "overrun", "detail": "another trigger was still waiting for a frame"})

    def take(self, frame_time: float | None) -> Trigger | None:
        """The waiting trigger when a frame taken at `frame_time` answers it (taken after it), else
        None. Called with None when no frame came: a trigger older than expire_s is answered 'no frame'."""
        with self._lock:
            waiting = self._waiting
            if waiting is None:
                return None
            if time.time() - waiting.received > self.expire_s:
                self._waiting = None
                self.expired += 1
            elif frame_time is not None and frame_time >= waiting.received:
                self._waiting = None
                return waiting
            else:
                return None
        log.warning("capture trigger %s: no frame within %g s", waiting.id, self.expire_s)
        self.answer(waiting, {"skipped": "no frame", "detail": f"no frame came within {self.expire_s:g} s"})
        return None

    def answer(self, trigger: Trigger, reply: dict, wait: bool = False) -> None:
        """Publish `{"id": trigger's id, **reply}` on the reply topic."""
        self._publish({"id": trigger.id, **reply}, wait)

    def _publish(self, reply: dict, wait: bool = False) -> None:
        try:
            sent = self._subscriber.client.publish(f"{self.topic}/reply", encode_payload(reply), qos=1)
            if wait:
                sent.wait_for_publish(2.0)
        except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
            log.warning("a capture reply could not be sent: %s", exc)

    def counts(self) -> dict:
        """{'received', 'overruns', 'refused', 'expired'} so far."""
        return {"received": self.received, "overruns": self.overruns, "refused": self.refused,
                "expired": self.expired}
