"""The dashboard's MQTT side: one subscriber that keeps trying while the broker is away."""

from __future__ import annotations

import logging
import uuid

from patchline.dashboard.state import DashboardState
from patchline.mqtt.broker import BrokerSettings, make_client
from patchline.names import check_name

log = logging.getLogger("patchline.dashboard")


class DashboardFeed:
    """Subscribes to `patchline/<line>/#` (every line when line is None) and hands each message to
    the state. Starts whether or not the broker is up; paho retries every 0.5–5 s, and the state's
    `broker` entry says connected, refused (with the broker's reason) or away."""

    def __init__(self, settings: BrokerSettings, state: DashboardState, line: str | None = None):
        self.settings = settings
        self.state = state
        self.topic = f"patchline/{check_name(line, 'line') if line else '+'}/#"
        self.client = make_client(settings, f"patchline-dashboard-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_delay_set(0.5, 5.0)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message

    def start(self) -> None:
        """Begin connecting in the background (never blocks, never raises for an absent broker)."""
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def _message(self, _client, _userdata, msg) -> None:
        # The state never raises for a message's content; this guard keeps the network thread alive
        # even for a fault of the dashboard's own, which is logged and counted instead.
        try:
            self.state.on_message(msg.topic, msg.payload)
        except Exception as exc:  # noqa: BLE001 - a dead broker thread would freeze the page silently
            self.state.payloads.refuse(f"a message on {msg.topic[:120]} could not be shown ({type(exc).__name__}).")
            log.exception("dashboard: message on %s not handled", msg.topic[:120])

    def _connected(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.state.set_broker(False, f"the broker refused the dashboard: {reason_code}")
            log.warning("broker %s refused the dashboard: %s", self.settings.address, reason_code)
            return
        client.subscribe(self.topic, qos=1)  # again after every reconnect; retained statuses come back
        self.state.set_broker(True, "")
        log.info("dashboard subscribed to %s at %s", self.topic, self.settings.address)

    def _disconnected(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.state.set_broker(False, f"lost the broker at {self.settings.address} ({reason_code}); reconnecting")
