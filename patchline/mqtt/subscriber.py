"""Subscriber: the one way patchline listens to its broker (`patchline alarms`, the demo, tests)."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Callable, Iterable

from patchline.errors import PatchlineError
from patchline.mqtt.broker import BrokerSettings, connect_now, make_client

log = logging.getLogger("patchline.mqtt")

OnMessage = Callable[[str, bytes, bool], None]


class Subscriber:
    """Subscribes (QoS 1) to topic filters and calls `on_message(topic, payload bytes, retained)`
    from the client's network thread for every message; re-subscribes after a reconnect.

    `persistent_session` keeps the broker's session (and the QoS 1 messages queued for it) while
    the subscriber is away; it needs a fixed `client_id`.
    """

    def __init__(self, settings: BrokerSettings, topics: str | Iterable[str], on_message: OnMessage,
                 client_id: str | None = None, persistent_session: bool = False,
                 reconnect_delay: tuple[float, float] = (0.5, 10.0)):
        self.settings = settings
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.client = make_client(settings, client_id or f"patchline-sub-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent_session)
        self.client.reconnect_delay_set(*reconnect_delay)
        self._on_message = on_message
        self._subscribed = threading.Event()
        self._refused: list[str] = []
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._message
        self.client.on_disconnect = self._disconnected

    def start(self, connect_attempts: int = 3, timeout: float = 10.0) -> "Subscriber":
        """Connect (retrying `connect_attempts` times) and wait up to `timeout` s for the subscription.

        Raises PatchlineError (one sentence) when the broker is unreachable, refuses the login or
        does not answer."""
        connect_now(self.client, self.settings, connect_attempts, 0.5)
        self.client.loop_start()
        if not self._subscribed.wait(timeout) or self._refused:
            self.close()
            if self._refused:
                raise PatchlineError(f"the MQTT broker at {self.settings.address} refused the connection: "
                                     f"{self._refused[0]}.")
            raise PatchlineError(f"the MQTT broker at {self.settings.address} did not answer the subscription "
                                 f"to {', '.join(self.topics)}.")
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Subscriber":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _message(self, _client, _userdata, msg) -> None:
        # A handler's fault must not end paho's network thread (the subscriber would go deaf while
        # looking connected): it is logged and the next message is handled.
        try:
            self._on_message(msg.topic, msg.payload, bool(msg.retain))
        except Exception:  # noqa: BLE001
            log.exception("a message on %.120s was not handled", msg.topic)

    def _connected(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._refused.append(str(reason_code))
            self._subscribed.set()
            return
        client.subscribe([(topic, 1) for topic in self.topics])  # again after every reconnect

    def _disconnected(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.settings.address, reason_code)


def take_messages(inbox: "queue.Queue", handle: Callable[[object], bool], count: int | None = None,
                  timeout: float | None = None) -> int:
    """The subscribe-and-wait loop of a listening command: take what the subscriber queued and
    `handle` it (True: it counts) until `count` were counted, `timeout` s passed or Ctrl-C.
    Returns how many were counted."""
    deadline = None if timeout is None else time.monotonic() + timeout
    counted = 0
    try:
        while count is None or counted < count:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                item = inbox.get(timeout=wait)
            except queue.Empty:
                continue
            counted += bool(handle(item))
    except KeyboardInterrupt:
        pass
    return counted
