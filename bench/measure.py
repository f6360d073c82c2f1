"""Measure one request shape against one server with wrk, with its CPU cost."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.api import Unavailable
from bench.process import ServerProcess
from bench.wrk import RequestSpec, WrkError, lua_script, run_wrk

logger = logging.getLogger("bench.measure")

MAX_ERROR_RATE = 0.01
PROBE_TIMEOUT_S = 60
OK = "ok"
UNAVAILABLE = "not available"


@dataclass
class Timing:
    """How long wrk warms up and then measures, in seconds."""

    duration_s: float
    warmup_s: float


@dataclass
class Measurement:
    scenario: str
    title: str
    system: str
    connections: int
    status: str = OK
    reason: str = ""
    note: str = ""
    requests: int = 0
    seconds: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def p50_ms(self) -> float:
        return self.latency_ms.get("p50", 0.0)

    @property
    def p99_ms(self) -> float:
        return self.latency_ms.get("p99", 0.0)

    @property
    def cpu_per_request_ms(self) -> float:
        return 1000 * self.cpu_seconds / max(self.requests, 1)

    @property
    def cpu_utilisation(self) -> float:
        """Server CPU seconds per wall-clock second: 1.0 is one busy core."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


def probe(server: ServerProcess, spec: RequestSpec) -> None:
    """Send the scenario's request once; raise Unavailable unless it succeeds."""
    path = spec.path + ("0" if spec.key_count else "")
    body = spec.bodies[0] if spec.bodies else spec.body
    verify: str | bool = str(server.tls[0]) if server.tls else True
    with requests.Session() as session:
        session.trust_env = False
        try:
            response = session.request(
                spec.method,
                server.url + path,
                data=body,
                headers={**spec.headers, "Content-Type": "application/json"},
                verify=verify,
                timeout=PROBE_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise Unavailable(f"{spec.method} {path} failed: {exc}") from None
    if not response.ok:
        raise Unavailable(
            f"{spec.method} {path} returned HTTP {response.status_code}: "
            f"{response.text[:200].strip()}"
        )


def measure(
    server: ServerProcess,
    spec: RequestSpec,
    result: Measurement,
    timing: Timing,
    load_core: int | None,
    script_dir: Path,
) -> Measurement:
    """Fill result with wrk's figures for spec against server."""
    try:
        probe(server, spec)
    except Unavailable as exc:
        return _unavailable(result, str(exc))

    script = script_dir / f"{result.scenario}-{server.name}.lua"
    script.write_text(lua_script(spec))
    try:
        if timing.warmup_s > 0:
            run_wrk(server.url, script, result.connections, timing.warmup_s, load_core)
        cpu_before = server.cpu_seconds()
        figures = run_wrk(
            server.url, script, result.connections, timing.duration_s, load_core
        )
        cpu_after = server.cpu_seconds()
    except WrkError as exc:
        return _unavailable(result, f"wrk failed: {exc}")

    result.requests = figures.requests
    result.seconds = figures.duration_s
    result.requests_per_s = figures.requests_per_s
    result.latency_ms = figures.latency_ms
    result.errors = figures.errors
    result.cpu_seconds = cpu_after - cpu_before
    if figures.error_rate > MAX_ERROR_RATE:
        result.status = UNAVAILABLE
        result.reason = (
            f"error rate {figures.error_rate:.1%} "
            f"({figures.errors} of {figures.requests} requests failed)"
        )
    return result


def _unavailable(result: Measurement, reason: str) -> Measurement:
    logger.warning("%s on %s: %s", result.scenario, result.system, reason)
    result.status = UNAVAILABLE
    result.reason = reason
    return result
