"""What the dashboard keeps of a message: known fields only, each of its type, bounded.

A message's payload has already passed `decode_payload` (finite numbers, bounded size and depth);
here every field the page shows is reduced to a finite number, a short string, or None, so one
camera's state stays a few kilobytes whatever its publisher sends. The page still escapes every
string it shows (page.html writes text, never HTML).
"""

from __future__ import annotations

import math
import re

MAX_TEXT = 200          # characters of any string kept (a reason, a source, a version)
MAX_REASONS = 8         # drift reasons kept
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

STATUS_NUMBERS = ("fps", "dropped_frames", "dropped_verdicts", "dropped_alarms", "errors", "unspooled_alarms",
                  "lost_alarms")
STATUS_TEXTS = ("state", "bank_version", "reason", "timestamp", "host")
ALARM_NUMBERS = ("frame_id", "score", "threshold")
ALARM_TEXTS = ("timestamp", "source", "bank_version")


def number(value: object) -> float | int | None:
    """`value` when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and abs(value) > 2 ** 53:
        return None  # beyond what the browser's numbers hold exactly
    return value


def text(value: object, limit: int = MAX_TEXT) -> str | None:
    """`value` as a string of at most `limit` characters (control characters replaced), or None
    when it is not a string or number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    out = str(value)[:limit]
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in out)


def snapshot_name(value: object) -> str | None:
    """`value` when it is a plain snapshot file name (letters, digits, '_', '-', '.'), else None."""
    return value if isinstance(value, str) and _SNAPSHOT_NAME.match(value) and ".." not in value else None


def status(payload: dict) -> dict:
    """A status message's fields the page shows, cleaned; `state` is always there."""
    out = {k: number(payload.get(k)) for k in STATUS_NUMBERS if number(payload.get(k)) is not None}
    out.update({k: text(payload.get(k)) for k in STATUS_TEXTS if text(payload.get(k)) is not None})
    out.setdefault("state", "unknown")
    out["state"] = re.sub(r"[^a-z_-]", "", out["state"].lower())[:32] or "unknown"  # also a CSS class
    return out


def region(value: object) -> dict | None:
    """An alarm's region: {"bbox": four numbers, "area": a number}, or None."""
    if not isinstance(value, dict):
        return None
    bbox = value.get("bbox")
    clean = [number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
    return {"bbox": clean if clean and None not in clean else None, "area": number(value.get("area"))}


def alarm(payload: dict) -> dict:
    """The fields of an alarm the page lists, cleaned."""
    out = {k: number(payload.get(k)) for k in ALARM_NUMBERS}
    out.update({k: text(payload.get(k)) for k in ALARM_TEXTS})
    out["region"] = region(payload.get("region"))
    out["snapshot"] = snapshot_name(payload.get("snapshot"))
    return out


def drift(payload: dict) -> dict:
    """A drift message's state and statistics, cleaned."""
    reasons = payload.get("reasons")
    reasons = [text(r) for r in reasons[:MAX_REASONS] if text(r) is not None] if isinstance(reasons, list) else []
    return {"drift": payload.get("drift") is True, "reasons": reasons, "median": number(payload.get("median")),
            "p99": number(payload.get("p99")), "alarm_rate": number(payload.get("alarm_rate"))}


def verdict_point(payload: dict) -> tuple[float, str] | None:
    """(score, verdict) of a verdict for the live strip, or None when its score is not a finite number."""
    score = number(payload.get("score"))
    if score is None:
        return None
    return float(score), "defect" if payload.get("verdict") == "defect" else "good"
