"""Payload encoding: compact UTF-8 JSON in which numpy scalars and arrays are plain values."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path


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


def decode_object(raw: bytes) -> dict | None:
    """A received payload as a dict, or None when it is not a JSON object."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
