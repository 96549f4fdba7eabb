"""`patchline alarms`: print defect alarms from the broker as they happen (DESIGN.md §1, §6)."""

from __future__ import annotations

import json
import logging
import queue
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime
from typing import TextIO

import paho.mqtt.client as mqtt

from patchline.errors import PatchlineError
from patchline.mqtt import BrokerSettings, make_client

log = logging.getLogger("patchline.mqtt")


def alarm_topic(line: str | None) -> str:
    """`patchline/<line>/+/alarm`, or every line's alarms when `line` is None."""
    if line is not None and (not line or any(c in line for c in "/+#")):
        raise PatchlineError(f"line {line!r} must be a name without '/', '+', '#'.")
    return f"patchline/{line or '+'}/+/alarm"


def format_alarm(payload: dict, topic: str = "") -> str:
    """One human-readable line: time, line, camera, score/threshold, region bbox/area, source."""
    parts = topic.split("/")
    line = payload.get("line") or (parts[1] if len(parts) > 2 else "-")
    camera = payload.get("camera") or (parts[2] if len(parts) > 2 else "-")

    def num(v):
        return f"{v:.4g}" if isinstance(v, (int, float)) else "-"

    region = payload.get("region") or {}
    bbox = region.get("bbox") if isinstance(region, dict) else region
    bbox_text = "[" + ",".join(str(int(round(v))) for v in bbox) + "]" if isinstance(bbox, (list, tuple)) else "-"
    area = region.get("area") if isinstance(region, dict) else None
    fields = [
        str(payload.get("timestamp") or datetime.now().astimezone().isoformat(timespec="seconds")),
        f"line={line}",
        f"camera={camera}",
        f"score={num(payload.get('score'))}/{num(payload.get('threshold'))}",
        f"region={bbox_text}" + (f" area={int(area)}" if isinstance(area, (int, float)) else ""),
        f"source={payload.get('source') or '-'}",
    ]
    if payload.get("frame_id") is not None:
        fields.append(f"frame={payload['frame_id']}")
    return "  ".join(fields)


def _connect(client: mqtt.Client, settings: BrokerSettings, attempts: int, delay: float) -> None:
    """Connect synchronously, retrying a few times; raise one sentence when the broker stays away."""
    last = None
    for i in range(attempts):
        try:
            client.connect(settings.host, settings.port, settings.keepalive)
            return
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS handshake
            last = exc
            if i + 1 < attempts:
                time.sleep(delay)
    if isinstance(last, ssl.SSLCertVerificationError):
        reason = f"its TLS certificate is not trusted ({last.verify_message}; pass the broker's CA with --mqtt-ca)"
    elif isinstance(last, ssl.SSLError):
        reason = f"the TLS handshake failed ({last.reason or last})"
    else:
        reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
    raise PatchlineError(f"cannot reach the MQTT broker at {settings.address}: {reason}.")


def run_alarms(url: str, line: str | None = None, json_lines: bool = False,
               username: str | None = None, password: str | None = None,
               tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
               tls_insecure: bool = False, count: int | None = None, timeout: float | None = None,
               out: TextIO | None = None, connect_attempts: int = 3) -> int:
    """Subscribe to alarms (QoS 1) and print one line per alarm until Ctrl-C, `count` or `timeout`.

    `json_lines` prints each alarm's JSON payload on one line instead of the human line.
    Returns the exit status (0). An unreachable broker or refused login raises PatchlineError.
    """
    settings = BrokerSettings.from_url(url, username=username, password=password, tls_ca=tls_ca,
                                       tls_cert=tls_cert, tls_key=tls_key, tls_insecure=tls_insecure)
    topic = alarm_topic(line)
    out = out or sys.stdout
    inbox: queue.Queue = queue.Queue()
    connected = threading.Event()
    refused: list[str] = []

    client = make_client(settings, f"patchline-alarms-{uuid.uuid4().hex[:8]}")
    client.reconnect_delay_set(0.5, 10)

    def on_connect(c, _u, _f, reason_code, _p):
        if reason_code.is_failure:
            refused.append(str(reason_code))
            connected.set()
            return
        # Subscribing here re-subscribes after every reconnect (clean session).
        c.subscribe(topic, qos=1)
        connected.set()

    def on_message(_c, _u, msg):
        inbox.put((msg.topic, msg.payload))

    def on_disconnect(_c, _u, _f, reason_code, _p):
        if reason_code.is_failure:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", settings.address, reason_code)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    _connect(client, settings, max(1, connect_attempts), 0.5)
    client.loop_start()
    try:
        if not connected.wait(10.0):
            raise PatchlineError(f"the MQTT broker at {settings.address} did not answer the connection request.")
        if refused:
            raise PatchlineError(f"the MQTT broker at {settings.address} refused the connection: {refused[0]}.")
        log.info("listening for alarms on %s at %s", topic, settings.address)
        deadline = None if timeout is None else time.monotonic() + timeout
        printed = 0
        while count is None or printed < count:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                msg_topic, raw = inbox.get(timeout=wait)
            except queue.Empty:
                continue
            try:
                payload = json.loads(raw)
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            except ValueError:
                log.warning("alarm on %s is not a JSON object (%d bytes); skipped", msg_topic, len(raw))
                continue
            text = json.dumps(payload, separators=(",", ":")) if json_lines else format_alarm(payload, msg_topic)
            out.write(text + "\n")
            out.flush()
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 0
