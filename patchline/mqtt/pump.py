"""The delivery pump: the one thread that hands queued messages to the MQTT client.

It waits until the connection is up and something is queued, takes a batch (retained state first,
then the oldest results that fit the outbox's window), hands each to `send` and records its message
id; the broker's acknowledgements come back through `acked`. `send` is paho's publish in a run and
any function returning (rc, mid) in a test. The client is never called while the lock is held:
paho's own callbacks take the lock, under paho's lock.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import paho.mqtt.client as mqtt

from patchline.mqtt.outbox import Message, Outbox

log = logging.getLogger("patchline.mqtt")


class DeliveryPump:
    """take(): the next batch, called under `cond` (empty: nothing to send); has_work(): whether one waits.
    delivered(msg): a message was acknowledged (called without the lock)."""

    def __init__(self, cond: threading.Condition, outbox: Outbox, send: Callable[[Message], tuple[int, int]],
                 take: Callable[[], list[Message]], has_work: Callable[[], bool],
                 delivered: Callable[[Message], None]):
        self.cond, self.outbox, self.send = cond, outbox, send
        self.take, self.has_work, self.delivered = take, has_work, delivered
        self.connected = False
        self.stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="patchline-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not (self.stopped or (self.connected and self.has_work())):
                    self.cond.wait(0.5)
                if self.stopped:
                    return
                work = self.take()
            for msg in work:
                rc, mid = self.send(msg)
                with self.cond:
                    # MQTT_ERR_QUEUE_SIZE is not expected (paho's queue is unbounded): send it again later.
                    done = self.outbox.handed(msg, mid, queue_full=rc == mqtt.MQTT_ERR_QUEUE_SIZE)
                    self.cond.notify_all()
                if done is not None:
                    self.delivered(done)

    def acked(self, mid: int) -> None:
        """The broker acknowledged message id `mid` (paho's network thread)."""
        with self.cond:
            msg = self.outbox.acked(mid)
            self.cond.notify_all()
        if msg is not None:
            self.delivered(msg)
