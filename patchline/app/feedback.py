"""Operator feedback over MQTT: `patchline feedback L --listen --mqtt URL`.

An operator console publishes to `patchline/<line>/feedback` a JSON object naming the images of
false alarms on this host's disk (an alarm's `source` file, or a saved snapshot):

    {"false_alarm": ["/data/line1/0042.png"], "id": "anything to match the reply"}

The listener grows the line's live bank with them (training/grow.py: each then scores below the
threshold), makes the new version live (running pipelines follow) and answers on
`patchline/<line>/feedback/reply` with {"id", "version", "images", "patches_added"} or {"id",
"error": one sentence}. Who may publish feedback is the broker's to enforce: an ACL that gives
only the operator console's user write access to the topic (tools/mosquitto.conf).
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from pathlib import Path

from patchline.errors import PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import decode_object, encode_payload
from patchline.mqtt.subscriber import Subscriber
from patchline.mqtt.topics import feedback_topic

log = logging.getLogger(__name__)


def _images_of(request: dict | None) -> list[Path]:
    """The image files a feedback request names; PatchlineError (one sentence) when it names none
    or one is not a readable image."""
    from patchline.core.preprocess import load_image

    files = request.get("false_alarm") if isinstance(request, dict) else None
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise PatchlineError('a feedback message must be a JSON object with "false_alarm": [image file, …].')
    paths = [Path(f) for f in files]
    for path in paths:
        load_image(path)
    return paths


def listen_for_feedback(settings: BrokerSettings, line: str, banks: Path, weights: Path | None = None,
                        count: int | None = None, timeout: float | None = None) -> int:
    """Grow `line`'s bank from feedback messages until Ctrl-C, `count` messages or `timeout` s.
    Returns the exit status (0); an unreachable broker raises PatchlineError."""
    from patchline.app.jobs import grow_line

    topic = feedback_topic(line)
    inbox: queue.Queue = queue.Queue()
    subscriber = Subscriber(settings, topic, lambda _t, raw, retained: None if retained else inbox.put(raw),
                            client_id=f"patchline-feedback-{uuid.uuid4().hex[:8]}")
    subscriber.start()
    log.info("listening for feedback on %s at %s", topic, settings.address)
    handled, deadline = 0, None if timeout is None else time.monotonic() + timeout
    try:
        while count is None or handled < count:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                raw = inbox.get(timeout=wait)
            except queue.Empty:
                continue
            request = decode_object(raw)
            reply = {"id": request.get("id") if isinstance(request, dict) else None}
            try:
                paths = _images_of(request)
                result = grow_line(banks, line, paths, weights, progress=False,
                                   reason=f"operator feedback over MQTT: {len(paths)} false alarm(s)", cover=True)
                added = result.meta["training"]["added"]
                reply.update(version=result.meta.version, images=len(paths), patches_added=added["n_patches"])
                log.info("line %s: feedback on %d image(s) → bank %s", line, len(paths), result.meta.version)
            except PatchlineError as exc:
                reply["error"] = str(exc)
                log.error("line %s: feedback refused: %s", line, exc)
            sent = subscriber.client.publish(f"{topic}/reply", encode_payload(reply), qos=1)
            try:
                sent.wait_for_publish(10)  # the reply leaves before the next message (or the exit)
            except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
                log.warning("line %s: the feedback reply could not be sent: %s", line, exc)
            handled += 1
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()
    return 0
