"""Times as payloads and logs write them: ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso_utc(timestamp: float | None = None) -> str:
    """`timestamp` (epoch seconds; now when None) as ISO 8601 UTC with milliseconds, e.g.
    2024-05-01T12:00:00.123Z."""
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
