"""`patchline alarms`: print defect alarms from the broker as they happen (DESIGN.md §1, §6)."""

from __future__ import annotations

import json
import logging
import queue
import sys
import time
import uuid
from datetime import datetime
from typing import TextIO

from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import decode_object
from patchline.mqtt.subscriber import Subscriber
from patchline.mqtt.topics import camera_filter

log = logging.getLogger("patchline.mqtt")


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
    topic = camera_filter(line, "alarm")
    out = out or sys.stdout
    inbox: queue.Queue = queue.Queue()
    subscriber = Subscriber(settings, topic, lambda t, raw, _retained: inbox.put((t, raw)),
                            client_id=f"patchline-alarms-{uuid.uuid4().hex[:8]}")
    subscriber.start(connect_attempts=max(1, connect_attempts))
    try:
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
            payload = decode_object(raw)
            if payload is None:
                log.warning("alarm on %s is not a JSON object (%d bytes); skipped", msg_topic, len(raw))
                continue
            text = json.dumps(payload, separators=(",", ":")) if json_lines else format_alarm(payload, msg_topic)
            out.write(text + "\n")
            out.flush()
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()
    return 0
