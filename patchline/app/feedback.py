"""Operator feedback over MQTT: `patchline feedback L --listen --mqtt URL --image-root DIR [--snapshots DIR]`.

An operator console publishes to `patchline/<line>/feedback` a JSON object naming the frames of
false alarms the line kept — an alarm's `snapshot` (a file of the line's --snapshots folder) or
its `source` (an image below one of the listener's --image-root folders):

    {"false_alarm": ["0042.png"], "id": "anything to match the reply"}

Names are resolved by app/frame_names.py, never used as paths: anything else is refused with the
same sentence whether or not such a file exists. The listener grows the line's live bank with the
frames (training/grow.py: each then scores below the threshold), makes the new version live
(running pipelines follow) and answers on `patchline/<line>/feedback/reply` with {"id", "version",
"images", "patches_added"} or {"id", "error": one sentence}. A message that is not a payload
patchline accepts (mqtt/payload.py), a full disk during the bank write, any refusal: an error
reply, and the listener keeps listening. Who may publish feedback is the broker's to enforce: an
ACL that gives only the operator console's user write access to the topic (tools/mosquitto.conf).
"""

from __future__ import annotations

import logging
import queue
import uuid
from pathlib import Path
from typing import Sequence

from patchline.app.frame_names import FrameNames
from patchline.errors import PatchlineError
from patchline.mqtt.broker import BrokerSettings
from patchline.mqtt.payload import decode_payload, encode_payload
from patchline.mqtt.subscriber import Subscriber, take_messages
from patchline.mqtt.topics import feedback_topic

log = logging.getLogger(__name__)


def _request_id(request: dict | None) -> str | int | None:
    """The request's id when it is a short string or a whole number (echoed in the reply), else None."""
    value = request.get("id") if isinstance(request, dict) else None
    if isinstance(value, str) and len(value) <= 200:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def handle_feedback(raw: bytes, line: str, banks: Path, frames: FrameNames, weights: Path | None = None) -> dict:
    """One feedback message → its reply: {"id", "version", "images", "patches_added"} or {"id", "error"}.

    Never raises for what the message holds or for a failed bank write: the reason is the reply's error."""
    from patchline.app.jobs import grow_line

    request = None
    try:
        request = decode_payload(raw)
        paths = frames.resolve_all(request.get("false_alarm"))
        result = grow_line(banks, line, paths, weights, progress=False,
                           reason=f"operator feedback over MQTT: {len(paths)} false alarm(s)", cover=True)
        added = result.meta["training"]["added"]
        log.info("line %s: feedback on %d image(s) → bank %s", line, len(paths), result.meta.version)
        return {"id": _request_id(request), "version": result.meta.version, "images": len(paths),
                "patches_added": added["n_patches"]}
    except PatchlineError as exc:  # a refused payload or frame name, a bank that cannot be written
        error = str(exc)
    except OSError as exc:  # the bank folder's disk, outside what write_bank already words
        error = f"the bank could not be written: {exc.strerror or exc}."
    except MemoryError:
        error = "the feedback needed more memory than this host has; nothing changed."
    log.error("line %s: feedback refused: %s", line, error)
    return {"id": _request_id(request), "error": error}


def listen_for_feedback(settings: BrokerSettings, line: str, banks: Path, weights: Path | None = None,
                        count: int | None = None, timeout: float | None = None,
                        image_roots: Sequence[Path] = (), snapshots: Path | None = None) -> int:
    """Grow `line`'s bank from feedback messages naming frames below `image_roots` or in
    `snapshots`, until Ctrl-C, `count` messages or `timeout` s. Returns the exit status (0); an
    unreachable broker raises PatchlineError."""
    from patchline.bank.leftovers import remove_leftovers

    remove_leftovers(Path(banks) / line)  # what a crashed or refused write left
    frames = FrameNames(image_roots, snapshots)
    if not frames.roots and frames.snapshots is None:
        log.warning("no --image-root or --snapshots given: every feedback message will be refused")
    topic = feedback_topic(line)
    inbox: queue.Queue = queue.Queue(maxsize=64)
    subscriber = Subscriber(settings, topic, lambda _t, raw, retained: None if retained else _offer(inbox, raw),
                            client_id=f"patchline-feedback-{uuid.uuid4().hex[:8]}")
    subscriber.start()
    log.info("listening for feedback on %s at %s", topic, settings.address)

    def answer(raw: bytes) -> bool:
        _reply(subscriber, topic, handle_feedback(raw, line, banks, frames, weights), line)
        return True

    try:
        take_messages(inbox, answer, count, timeout)
    finally:
        subscriber.close()
    return 0


def _offer(inbox: queue.Queue, raw: bytes) -> None:
    """Queue a message for the listener; beyond 64 waiting (a flood), drop it with a log line."""
    try:
        inbox.put_nowait(raw)
    except queue.Full:
        log.warning("feedback arrives faster than banks grow: a message was dropped (64 already wait)")


def _reply(subscriber: Subscriber, topic: str, reply: dict, line: str) -> None:
    sent = subscriber.client.publish(f"{topic}/reply", encode_payload(reply), qos=1)
    try:
        sent.wait_for_publish(10)  # the reply leaves before the next message (or the exit)
    except (RuntimeError, ValueError) as exc:  # paho: not connected / queue full
        log.warning("line %s: the feedback reply could not be sent: %s", line, exc)
