"""Triggers and recipe changes that arrive over MQTT, for the station (patchline/plc/station.py).

    patchline/<camera>/trigger   any small payload (e.g. {} or {"id": "part-17"}): a verdict of the next frame
    patchline/<camera>/recipe    {"recipe": N} or the bare number N: judge with recipe N from the next frame

Everything received is untrusted: the camera must be one of the run's, the payload small (at most
MAX_REQUEST_BYTES), the recipe a whole number; anything else is refused, counted on the station
and logged (never a crash). A retained trigger is ignored (it was meant for an earlier part); a
retained recipe is taken (it says which product the line makes now).
"""

from __future__ import annotations

import logging

from patchline.mqtt.payload import PayloadError, decode_payload
from patchline.mqtt.subscriber import Subscriber
from patchline.plc.station import Station

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024
TOPICS = ("patchline/+/trigger", "patchline/+/recipe")


def recipe_number(raw: bytes) -> int:
    """The recipe number of a `…/recipe` payload ({"recipe": N} or N); PayloadError when there is none."""
    text = bytes(raw).strip()
    if text.isdigit() and len(text) <= 5:
        return int(text)
    value = decode_payload(raw, max_bytes=MAX_REQUEST_BYTES).get("recipe")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise PayloadError(f"the recipe is {str(value)[:40]!r}, not a whole number 1 … 65535.")
    return value


class MqttRequests:
    """Subscribes to every camera's trigger and recipe topics and passes them to the station."""

    def __init__(self, station: Station, broker):
        self.station = station
        self.subscriber = Subscriber(broker, list(TOPICS), self._message)

    def start(self) -> "MqttRequests":
        """Connect and subscribe (PatchlineError in one sentence when the broker cannot be reached)."""
        self.subscriber.start()
        log.info("listening for triggers and recipes on %s", ", ".join(TOPICS))
        return self

    def close(self) -> None:
        self.subscriber.close()

    def _message(self, topic: str, raw: bytes, retained: bool) -> None:
        parts = topic.split("/")
        camera, kind = parts[1], parts[2]
        if camera not in self.station.cameras:
            self.station.refuse(None, f"{topic}: no camera {camera[:60]!r} in this run", "mqtt")
            return
        if len(raw) > MAX_REQUEST_BYTES:
            self.station.refuse(camera, f"{topic}: a payload of {len(raw)} bytes (at most {MAX_REQUEST_BYTES})",
                                "mqtt")
            return
        if kind == "trigger":
            if not retained:
                self.station.trigger(camera, "mqtt")
            return
        try:
            number = recipe_number(raw)
        except PayloadError as exc:
            self.station.refuse(camera, f"{topic}: {exc}", "mqtt")
            return
        self.station.select_recipe(camera, number, "mqtt")
