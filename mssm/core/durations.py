"""Durations as Vault accepts them: seconds as a number or a string, or
Go-style strings with the units s, m, h and d ("1h30m", "1.5h", "90s")."""

from __future__ import annotations

import re

from mssm.core.errors import BadRequest

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60}
_UNIT_SECONDS |= {"h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
ACCEPTED = 'seconds as an integer, or a duration such as "90s", "30m", "1h30m", "2d"'
# Go's time.Duration (int64 nanoseconds) ends here, about 292 years; larger
# values also overflow the 64-bit integers that storage and JSON carry.
MAX_SECONDS = 2**63 // 10**9


def parse_duration(value: object, field: str = "ttl") -> int:
    """Return value as whole seconds; raise BadRequest naming field if invalid."""
    if isinstance(value, bool):
        raise _invalid(field, value)
    if isinstance(value, int):
        return _non_negative(value, field, value)
    if isinstance(value, float) and value.is_integer():
        return _non_negative(int(value), field, value)
    if not isinstance(value, str):
        raise _invalid(field, value)
    text = value.strip()
    if text == "":
        return 0
    if re.fullmatch(r"-?\d+", text):
        # Python refuses to convert very long digit strings, so a number
        # that cannot fit is rejected before int() is called.
        digits = text.lstrip("-").lstrip("0")
        if len(digits) > len(str(MAX_SECONDS)):
            return _non_negative(MAX_SECONDS + 1, field, value)
        return _non_negative(int(text), field, value)
    negative = text.startswith("-")
    body = text[1:] if negative else text
    total = 0.0
    position = 0
    for match in _PART.finditer(body):
        if match.start() != position:
            raise _invalid(field, value)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(body) or position == 0:
        raise _invalid(field, value)
    if negative and total:
        raise BadRequest(f"invalid {field} {_shorten(value)}: must not be negative")
    if not total <= MAX_SECONDS:
        # Also true for an infinite total from a huge number of hours.
        return _non_negative(MAX_SECONDS + 1, field, value)
    return int(total)


def parse_signed_duration(value: object, field: str) -> int:
    """Like parse_duration, but a leading '-' gives a negative number."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:], field)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return value
    return parse_duration(value, field)


def _non_negative(seconds: int, field: str, value: object) -> int:
    if seconds < 0:
        raise BadRequest(f"invalid {field} {_shorten(value)}: must not be negative")
    if seconds > MAX_SECONDS:
        raise BadRequest(
            f"invalid {field} {_shorten(value)}: at most {MAX_SECONDS} seconds "
            "(about 292 years) is allowed"
        )
    return seconds


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _invalid(field: str, value: object) -> BadRequest:
    return BadRequest(f"invalid {field} {_shorten(value)}: expected {ACCEPTED}")


def format_go_duration(seconds: int) -> str:
    """Format seconds as Go's time.Duration prints them: "0s", "30m0s", "1h0m0s"."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"
