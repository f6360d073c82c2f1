"""Run wrk: install it, write its Lua request script, parse its report."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("bench.wrk")

APT_TIMEOUT = 600


class WrkError(Exception):
    """wrk is missing and cannot be installed, or its output cannot be parsed."""


@dataclass
class RequestSpec:
    """The request that every wrk connection repeats.

    With key_count set, each request appends a random integer in
    [0, key_count) to path, so reads spread over that many stored keys.
    With bodies set, requests send them in turn, so no two requests in
    flight share a body while there are more bodies than connections.
    """

    method: str
    path: str
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key_count: int = 0
    bodies: list[str] = field(default_factory=list)


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def error_rate(self) -> float:
        return self.errors / max(self.requests, 1)


def ensure_wrk() -> str:
    """Return the path of wrk, installing the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found

    logger.info("wrk not found; installing it with apt-get")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        try:
            subprocess.run(
                command, check=True, capture_output=True, timeout=APT_TIMEOUT
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise WrkError(
                f"wrk is not installed and `{' '.join(command)}` failed ({exc}); "
                "install the Debian package wrk and run again"
            ) from None

    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return found


def lua_string(text: str) -> str:
    """Quote text as a Lua long string, which needs no escapes inside."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    equals = "=" * level
    # Lua drops a newline right after the opening bracket, so none is added.
    return f"[{equals}[{text}]{equals}]"


def lua_script(spec: RequestSpec) -> str:
    lines = [f"wrk.method = {lua_string(spec.method)}"]
    for name, value in spec.headers.items():
        # The spaces keep "[[" from opening a long string inside the brackets.
        lines.append(f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}")
    if spec.body is not None:
        lines.append(f"wrk.body = {lua_string(spec.body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')

    if spec.key_count:
        lines += _random_key_request(spec)
    elif spec.bodies:
        lines += _cycled_body_request(spec)
    else:
        lines.append(f"wrk.path = {lua_string(spec.path)}")
    return "\n".join(lines) + "\n"


def _random_key_request(spec: RequestSpec) -> list[str]:
    return [
        f"local prefix = {lua_string(spec.path)}",
        f"local count = {spec.key_count}",
        "math.randomseed(os.time())",
        "request = function()",
        "  return wrk.format(nil, prefix .. math.random(0, count - 1))",
        "end",
    ]


def _cycled_body_request(spec: RequestSpec) -> list[str]:
    quoted = ",\n  ".join(lua_string(body) for body in spec.bodies)
    return [
        'wrk.headers["Content-Type"] = "application/json"',
        f"local path = {lua_string(spec.path)}",
        f"local bodies = {{\n  {quoted}\n}}",
        "local next_body = 0",
        "request = function()",
        "  next_body = next_body % #bodies + 1",
        "  return wrk.format(nil, path, nil, bodies[next_body])",
        "end",
    ]


def run_wrk(
    url: str,
    script: Path,
    connections: int,
    duration_s: float,
    core: int | None,
) -> WrkResult:
    """Run one wrk measurement with one thread, pinned to core when given."""
    command = [
        ensure_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]

    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60
    )
    if completed.returncode != 0:
        raise WrkError(f"wrk exited with {completed.returncode}: {completed.stderr}")
    return parse_output(completed.stdout)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def parse_output(text: str) -> WrkResult:
    """Parse the report that `wrk --latency` prints."""
    total = _TOTAL.search(text)
    rate = _RATE.search(text)
    if total is None or rate is None:
        raise WrkError(f"wrk output has no request count or rate:\n{text}")

    latency = {
        f"p{match[1]}": float(match[2]) * _UNIT_MS[match[3]]
        for match in _PERCENTILE.finditer(text)
    }
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    socket_errors = sum(int(count) for count in socket.groups()) if socket else 0

    return WrkResult(
        requests=int(total[1]),
        duration_s=float(total[2]) * _UNIT_MS[total[3]] / 1000,
        requests_per_s=float(rate[1]),
        latency_ms=latency,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=socket_errors,
    )
