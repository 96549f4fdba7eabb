"""`patchline alarms`: print defect alarms from the broker as they happen (docs/mqtt.md: the alarm topic)."""

from __future__ import annotations

import json
import logging
import queue
import sys
import uuid
from datetime import datetime
from typing import TextIO

from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import PayloadCounter
from patchline.mqtt.subscriber import Subscriber, take_messages
from patchline.mqtt.topics import camera_filter

log = logging.getLogger("patchline.mqtt")


def shown(value: object, limit: int = 200) -> str:
    """`value` as terminal-safe text: at most `limit` characters, every control character (escape
    sequences, carriage returns, new lines) written as a visible \\x.. / \\u.... escape."""
    text = str(value)[:limit]
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_alarm(payload: dict, topic: str = "") -> str:
    """One human-readable, terminal-safe line: time, line, camera, score/threshold, region bbox/area, source."""
    parts = topic.split("/")
    line = payload.get("line") or (parts[1] if len(parts) > 2 else "-")
    camera = payload.get("camera") or (parts[2] if len(parts) > 2 else "-")

    def num(v):
        return f"{v:.4g}" if _is_number(v) else "-"

    region = payload.get("region") or {}
    bbox = region.get("bbox") if isinstance(region, dict) else region
    bbox_text = ("[" + ",".join(f"{v:.0f}" for v in bbox) + "]"
                 if isinstance(bbox, (list, tuple)) and len(bbox) <= 8 and all(_is_number(v) for v in bbox) else "-")
    area = region.get("area") if isinstance(region, dict) else None
    fields = [
        shown(payload.get("timestamp") or datetime.now().astimezone().isoformat(timespec="seconds")),
        f"line={shown(line)}",
        f"camera={shown(camera)}",
        f"score={num(payload.get('score'))}/{num(payload.get('threshold'))}",
        f"region={bbox_text}" + (f" area={area:.0f}" if _is_number(area) else ""),
        f"source={shown(payload.get('source') or '-')}",
    ]
    if payload.get("frame_id") is not None:
        fields.append(f"frame={shown(payload['frame_id'])}")
    return "  ".join(fields)


def run_alarms(url: BrokerSettings | str, line: str | None = None, json_lines: bool = False, *,
               count: int | None = None, timeout: float | None = None, out: TextIO | None = None,
               connect_attempts: int = 3) -> int:
    """Subscribe to alarms (QoS 1) and print one line per alarm until Ctrl-C, `count` or `timeout`.

    url: an mqtt:// URL, or BrokerSettings (credentials, TLS). `json_lines` prints each alarm's
    JSON payload on one line instead of the human line.
    Returns the exit status (0). An unreachable broker or refused login raises PatchlineError.
    Every message goes through the one payload decoder; a refused one is logged and counted (the
    count is logged at the end), never fatal. Printed text is terminal-safe (`shown`; JSON lines
    escape every non-ASCII character).
    """
    settings = BrokerSettings.from_url(url) if isinstance(url, str) else url
    topic = camera_filter(line, "alarm")
    out = out or sys.stdout
    inbox: queue.Queue = queue.Queue(maxsize=10000)
    payloads = PayloadCounter()

    def offer(msg_topic: str, raw: bytes, _retained: bool) -> None:
        try:
            inbox.put_nowait((msg_topic, raw))
        except queue.Full:  # printing fell 10,000 alarms behind: count it rather than block the network thread
            payloads.refuse("more than 10000 alarms waited to be printed.")

    def show(item) -> bool:
        msg_topic, raw = item
        payload = payloads.decode(raw)
        if payload is None:
            log.warning("alarm on %s refused (%d bytes): %s", shown(msg_topic), len(raw), payloads.last_reason)
            return False
        text = (json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False) if json_lines
                else format_alarm(payload, msg_topic))
        out.write(text + "\n")
        out.flush()
        return True

    subscriber = Subscriber(settings, topic, offer, client_id=f"patchline-alarms-{uuid.uuid4().hex[:8]}")
    subscriber.start(connect_attempts=max(1, connect_attempts))
    try:
        log.info("listening for alarms on %s at %s", topic, settings.address)
        take_messages(inbox, show, count, timeout)
    finally:
        subscriber.close()
        if payloads.refused:
            log.warning("%d alarm message(s) refused (not a payload patchline accepts)", payloads.refused)
    return 0
