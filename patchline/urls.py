"""URLs as logs and payloads may show them: without their secrets."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


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
