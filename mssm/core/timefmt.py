"""Timestamps in the form Vault's API uses: RFC 3339 in UTC, nanoseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(timestamp: float) -> str:
    """Format a Unix time as "2026-01-02T03:04:05.123456789Z"."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    nanos = int(round((timestamp % 1) * 1e9)) % 1_000_000_000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
