"""Payload encoding and decoding: compact UTF-8 JSON in which numpy scalars and arrays are plain values.

Everything that arrives from the broker is untrusted. `decode_payload` is the one decoder every
subscriber uses: it bounds the size, refuses nesting deeper than MAX_DEPTH before the JSON parser
sees it (a scan of the brackets outside strings, so `[` × 200,000 never reaches Python's
recursive parser), refuses NaN and ±Infinity, and wants a JSON object. It raises PayloadError
(one sentence); `decode_object` returns None instead, and `PayloadCounter` counts refusals for the
long-running listeners.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime
from pathlib import Path

from patchline.errors import PatchlineError

MAX_PAYLOAD_BYTES = 256 * 1024   # a verdict is ~600 bytes; a feedback message a few hundred
MAX_DEPTH = 16                   # a verdict nests 3 deep (payload → region → bbox)
MAX_INT_DIGITS = 18              # frame ids and counters; a longer integer is no count of anything real


class PayloadError(PatchlineError):
    """A received message is not a payload patchline accepts; the message says why in one sentence."""


def _json_default(obj):
    # numpy scalars and arrays reach payloads from the scoring code; .item()/.tolist() covers both.
    for attr in ("item", "tolist"):
        if hasattr(obj, attr):
            try:
                return getattr(obj, attr)()
            except (TypeError, ValueError):
                pass
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode_payload(payload: dict) -> bytes:
    """Compact UTF-8 JSON of `payload`; numpy values become plain numbers / lists."""
    return json.dumps(payload, separators=(",", ":"), default=_json_default).encode()


def nesting_depth(text: str, limit: int) -> int:
    """The deepest bracket nesting of JSON `text` outside strings; the scan stops once past `limit`,
    and a text with no more than `limit` opening brackets at all gives `limit` unscanned."""
    if text.count("[") + text.count("{") <= limit:
        return limit  # cannot nest deeper than its opening brackets (most payloads: a handful)
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str):
    raise PayloadError(f"the payload holds {name}, which is not a JSON number patchline accepts.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise PayloadError(f"the payload holds the number {text[:40]}, which is out of range.")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PayloadError(f"the payload holds an integer of {len(text)} digits; at most {MAX_INT_DIGITS} are accepted.")
    return int(text)


def decode_payload(raw: bytes, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """A received payload as a dict of finite numbers, strings, lists and dicts.

    Raises PayloadError (one sentence) when it is larger than `max_bytes`, not UTF-8, nested
    deeper than `max_depth`, not JSON, holds NaN / Infinity / a number out of range, or is not
    a JSON object."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise PayloadError(f"the payload is a {type(raw).__name__}, not bytes.")
    if len(raw) > max_bytes:
        raise PayloadError(f"the payload has {len(raw)} bytes; at most {max_bytes} are accepted.")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the payload is not UTF-8 text.") from None
    if nesting_depth(text, max_depth) > max_depth:
        raise PayloadError(f"the payload nests deeper than {max_depth} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError("the payload is not valid JSON.") from None
    if not isinstance(value, dict):
        raise PayloadError(f"the payload is a JSON {type(value).__name__}, not an object.")
    return value


def decode_object(raw: bytes) -> dict | None:
    """A received payload as `decode_payload` accepts it, or None when it refuses it."""
    try:
        return decode_payload(raw)
    except PayloadError:
        return None


class PayloadCounter:
    """Refused payloads of a long-running listener: how many, and the last reason (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.refused = 0
        self.last_reason = ""

    def decode(self, raw: bytes) -> dict | None:
        """`decode_payload(raw)`, or None after counting the refusal and keeping its reason."""
        try:
            return decode_payload(raw)
        except PayloadError as exc:
            self.refuse(str(exc))
            return None

    def refuse(self, reason: str) -> None:
        """Count one refused message and keep `reason` (one sentence) as the last."""
        with self._lock:
            self.refused += 1
            self.last_reason = reason
