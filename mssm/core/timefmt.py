"""Timestamps in the form Vault's API uses: RFC 3339 in UTC, nanoseconds."""

from __future__ import annotations

import time

# Formatted whole seconds. Audit lines format the current time and the
# token's issue time on every request, so a few entries serve most calls.
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 256


def rfc3339(timestamp: float) -> str:
    """Format a Unix time as "2026-01-02T03:04:05.123456789Z"."""
    whole = int(timestamp // 1)
    nanos = int(round((timestamp - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    prefix = _SECONDS.get(whole)
    if prefix is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _SECONDS[whole] = prefix
    return f"{prefix}.{nanos:09d}Z"
