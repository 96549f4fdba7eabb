"""Text forms shared by payloads and logs: ISO 8601 UTC times and URLs without their secrets."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit



def iso_utc(timestamp: float | None = None) -> str:
    """`timestamp` (epoch seconds; now when None) as ISO 8601 UTC with milliseconds, e.g.
    2024-05-01T12:00:00.123Z."""
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metric_text(value) -> str:
    """A table cell for a metric: a float with 4 decimals ("n/a" for NaN), anything else as str."""
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return str(value)


def shape_text(dims) -> str:
    """A tensor shape for messages: (N, 40, 28, 28), symbolic dims (a dynamic batch) shown as N."""
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" for d in dims) + ")"


def redacted_url(url: str) -> str:
    """`url` without user name, password or any query value (keys kept), for logs and payloads:
    cameras put secrets under any key (access_token, sig, …), so no value is trusted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = [(k, "***") for k, _ in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
