"""One JSON encoding of a LiveResult for every output that writes JSON (JSON lines, web page, /latest)."""

from __future__ import annotations

import json

from edge_ser.live.result import LiveResult

_last: tuple[LiveResult | None, str] = (None, "")
"""One-slot cache: the JSON-lines file and the web page both encode the same result object per update."""


def result_json(result: LiveResult) -> str:
    """`result.to_dict()` as one line of strict JSON: no newline inside, non-finite floats as null, ASCII only
    (non-ASCII labels are \\u-escaped, so a stdout with a C locale never fails to encode a line)."""
    global _last
    cached, text = _last  # one tuple read: consistent even if another thread replaces it meanwhile
    if cached is result:
        return text
    text = json.dumps(result.to_dict(), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    _last = (result, text)
    return text
