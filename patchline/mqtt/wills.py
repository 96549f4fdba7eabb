"""Last wills: every camera's status reads `offline` when the publishing process dies.

MQTT allows one will per connection. The publishing connection carries the will of the line's
first camera; every further camera gets a small idle connection (a "will keeper") whose only job
is to carry that camera's will. After a kill -9 or a network loss every
`patchline/<line>/<camera>/status` reads `offline` (reason "connection lost").
"""

from __future__ import annotations

from typing import Callable

import paho.mqtt.client as mqtt

from patchline.mqtt.broker import BrokerSettings, make_client
from patchline.mqtt.payload import encode_payload
from patchline.mqtt.topics import camera_topic, host_status_topic


def will_payload(line: str, camera: str | None, host: str) -> bytes:
    return encode_payload({"state": "offline", "camera": camera, "line": line, "reason": "connection lost",
                           "host": host})


def set_main_will(client: mqtt.Client, line: str, cameras: list[str], host: str) -> None:
    """The publishing connection's will: the first camera's status (or the host's, with no camera)."""
    first = cameras[0] if cameras else None
    topic = camera_topic(line, first, "status") if first else host_status_topic(line, host)
    client.will_set(topic, will_payload(line, first, host), qos=1, retain=True)


class WillKeepers:
    """One idle connection per camera after the first, each holding that camera's will.

    on_reconnect(camera): a keeper came back; its will may have fired while it was away, so the
    camera's real status must be stated again.
    """

    def __init__(self, settings: BrokerSettings, line: str, cameras: list[str], host: str,
                 reconnect_delay: tuple[float, float], on_reconnect: Callable[[str], None]):
        self.settings = settings
        self.clients = [self._keeper(line, cam, host, reconnect_delay, on_reconnect) for cam in cameras[1:]]

    def _keeper(self, line: str, camera: str, host: str, reconnect_delay, on_reconnect) -> mqtt.Client:
        client = make_client(self.settings, f"{host}-will-{camera}"[:200])
        client.reconnect_delay_set(*reconnect_delay)
        client.will_set(camera_topic(line, camera, "status"), will_payload(line, camera, host), qos=1, retain=True)

        def on_connect(_c, _u, _f, reason_code, _p):
            if not reason_code.is_failure:
                on_reconnect(camera)

        client.on_connect = on_connect
        return client

    def start(self) -> None:
        for client in self.clients:
            client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
            client.loop_start()

    def stop(self) -> None:
        """A clean disconnect each: the broker discards the wills."""
        for client in self.clients:
            client.disconnect()
            client.loop_stop()
