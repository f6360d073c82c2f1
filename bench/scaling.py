"""Latency and memory as stored data grows, and unseal time with live leases.

Each system gets a fresh server for this section. Secrets are added in
steps (1k, then up to 100k, then up to 1M), and after each step KV reads
spread over all stored keys and token lookups are measured, with the
server's resident memory.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import fixtures, loadgen
from bench.api import Unavailable
from bench.measure import UNAVAILABLE, Measurement, Timing, measure
from bench.plans import Plan
from bench.process import ServerError
from bench.scenarios import kv_read, token_lookup_self
from bench.servers import MSSM, Fleet, VaultServer

logger = logging.getLogger("bench.scaling")

API_FILL = "API, 64 connections"
STORAGE_FILL = "MSSM core in-process, SQLite without fsync"
# A step whose API fill would take longer than this, at the rate the previous
# step measured, is written through bench.storagefill instead (MSSM only).
API_FILL_BUDGET_S = 60.0
# OpenBao can only be filled through its API, which wrote about 2,200
# secrets/s on one core of the 2-core development machine, so its scaling
# stops at this size to keep the run within its time budget.
OPENBAO_MAX_SIZE = 100_000
# A storage fill restarts the server, so its caches start cold. Every scaling
# measurement therefore warms up for at least this long, even in quick mode.
MIN_WARMUP_S = 2.0


@dataclass
class ScalePoint:
    system: str
    size: int
    fill_method: str
    fill_seconds: float
    kv_read: Measurement
    token_lookup: Measurement
    rss_bytes: int


@dataclass
class UnsealPoint:
    system: str
    leases: int
    fill_seconds: float
    unseal_seconds: float
    rss_bytes: int
    reason: str = ""


def run_scaling(fleet: Fleet, plan: Plan, script_dir: Path) -> list[ScalePoint]:
    points: list[ScalePoint] = []
    for system in plan.scale_systems:
        try:
            server = fleet.start_fresh(system, f"{system}-scale")
        except ServerError as exc:
            logger.warning("scaling skipped for %s: %s", system, exc)
            continue
        try:
            points += _scale_one(server, plan, fleet, script_dir)
        finally:
            fleet.stop_server(server)
    return points


def _scale_one(
    server: VaultServer, plan: Plan, fleet: Fleet, script_dir: Path
) -> list[ScalePoint]:
    points = []
    api_rate = 0.0
    for size in plan.scale_sizes:
        if server.system != MSSM and size > OPENBAO_MAX_SIZE:
            print(f"scaling: {server.name} stops at {OPENBAO_MAX_SIZE:,} secrets")
            break
        print(f"scaling: filling {server.name} to {size:,} secrets", flush=True)
        try:
            method, seconds, rate = _fill(server, size, api_rate)
        except (Unavailable, ServerError, RuntimeError) as exc:
            logger.warning("scaling stopped for %s at %d: %s", server.name, size, exc)
            break
        api_rate = rate or api_rate

        read = _measure(server, "kv-read", size, plan, fleet, script_dir)
        lookup = _measure(server, "token-lookup-self", size, plan, fleet, script_dir)
        point = ScalePoint(
            server.system, size, method, seconds, read, lookup, server.rss_bytes()
        )
        _print_point(point)
        points.append(point)
    return points


def _fill(server: VaultServer, size: int, api_rate: float) -> tuple[str, float, float]:
    """Fill to size secrets; return the method, the seconds and the API rate."""
    current = server.fixtures.get("kv:bench", 0)
    missing = size - current
    started = time.perf_counter()
    if server.system == MSSM and api_rate and missing / api_rate > API_FILL_BUDGET_S:
        _storage_fill(server, current, size)
        return STORAGE_FILL, time.perf_counter() - started, 0.0

    fixtures.kv_secrets(server, size)
    seconds = time.perf_counter() - started
    return API_FILL, seconds, missing / seconds if seconds else 0.0


def _storage_fill(server: VaultServer, start: int, stop: int) -> None:
    server.stop()
    command = [
        sys.executable,
        "-m",
        "bench.storagefill",
        "--config",
        str(server.config_path),
        "--unseal-key",
        server.unseal_key,
        "--token",
        server.api.token,
        "--start",
        str(start),
        "--stop",
        str(stop),
        "--value",
        fixtures.SECRET_VALUE,
    ]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        server.restart()
        server.unseal()
    if completed.returncode != 0:
        raise RuntimeError(f"storage fill failed: {completed.stderr.strip()[-500:]}")
    server.fixtures["kv:bench"] = stop


def _print_point(point: ScalePoint) -> None:
    read, lookup = point.kv_read, point.token_lookup
    read_p99 = f"{read.p99_ms:.2f} ms" if read.ok else "n/a"
    lookup_p99 = f"{lookup.p99_ms:.2f} ms" if lookup.ok else "n/a"
    print(
        f"scaling: {point.system} {point.size:,} secrets filled in "
        f"{point.fill_seconds:.1f} s ({point.fill_method}): read p99 {read_p99}, "
        f"lookup p99 {lookup_p99}, RSS {point.rss_bytes / 10**6:.0f} MB",
        flush=True,
    )


def _measure(
    server: VaultServer,
    key: str,
    size: int,
    plan: Plan,
    fleet: Fleet,
    script_dir: Path,
) -> Measurement:
    title = "KV v2 read" if key == "kv-read" else "Token lookup-self"
    result = Measurement(
        scenario=f"{key}-{size}",
        title=f"{title}, {size:,} secrets",
        system=server.system,
        connections=16,
    )
    try:
        spec = kv_read(server, size) if key == "kv-read" else token_lookup_self(server)
    except Unavailable as exc:
        result.status = UNAVAILABLE
        result.reason = str(exc)
        return result
    timing = Timing(plan.timing.duration_s, max(plan.timing.warmup_s, MIN_WARMUP_S))
    return measure(server, spec, result, timing, fleet.cores.load, script_dir)


def run_unseal(fleet: Fleet, plan: Plan) -> list[UnsealPoint]:
    """Time a restart's unseal of MSSM with no leases, then with lease_count."""
    try:
        server = fleet.start_fresh(MSSM, "mssm-leases")
    except ServerError as exc:
        return [UnsealPoint(MSSM, plan.lease_count, 0, 0, 0, str(exc).splitlines()[0])]

    points = []
    try:
        fixtures.database(server)
        points.append(_unseal_point(server, 0, 0.0))
        fill_seconds = _fill_leases(server, plan.lease_count)
        points.append(_unseal_point(server, plan.lease_count, fill_seconds))
    except (Unavailable, ServerError) as exc:
        points.append(
            UnsealPoint(MSSM, plan.lease_count, 0, 0, 0, str(exc).splitlines()[0])
        )
    finally:
        fleet.stop_server(server)
    return points


def _fill_leases(server: VaultServer, count: int) -> float:
    print(f"unseal: creating {count:,} leases on {server.name}", flush=True)
    requests = (
        loadgen.HttpRequest("GET", "/v1/database/creds/nop") for _ in range(count)
    )
    result = loadgen.send_all(server.url, requests, server.api.token)
    if result.failures:
        raise Unavailable(
            f"lease fill failed: status counts {dict(result.status_counts)}"
        )
    return result.seconds


def _unseal_point(server: VaultServer, leases: int, fill_seconds: float) -> UnsealPoint:
    server.restart()
    seconds = server.unseal()
    print(f"unseal: {leases:,} leases: {seconds:.2f} s", flush=True)
    return UnsealPoint(server.system, leases, fill_seconds, seconds, server.rss_bytes())
