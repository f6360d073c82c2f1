"""Latency and memory as stored data grows, and unseal time with live leases.

Each system gets a fresh server for this section. Secrets are added in
steps (1k, then up to 100k, then up to 1M), and after each step KV reads
spread over all stored keys and token lookups are measured, with the
server's resident memory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bench import fixtures, loadgen
from bench.api import Unavailable
from bench.measure import UNAVAILABLE, Measurement, measure
from bench.plans import Plan
from bench.scenarios import kv_read, token_lookup_self
from bench.servers import MSSM, Fleet, ServerError, VaultServer

logger = logging.getLogger("bench.scaling")

API_FILL = "API, 64 connections"


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
    for size in plan.scale_sizes:
        print(f"scaling: filling {server.name} to {size:,} secrets", flush=True)
        started = time.perf_counter()
        try:
            fixtures.kv_secrets(server, size)
        except Unavailable as exc:
            logger.warning("scaling stopped for %s at %d: %s", server.name, size, exc)
            break
        fill_seconds = time.perf_counter() - started

        read = _measure(
            server,
            "kv-read",
            f"KV v2 read, {size:,} secrets",
            plan,
            fleet,
            script_dir,
            size,
        )
        lookup = _measure(
            server,
            "token-lookup-self",
            f"Token lookup-self, {size:,} secrets",
            plan,
            fleet,
            script_dir,
            size,
        )
        point = ScalePoint(
            server.system,
            size,
            API_FILL,
            fill_seconds,
            read,
            lookup,
            server.rss_bytes(),
        )
        print(
            f"scaling: {server.system} {size:,} secrets: read p99 "
            f"{read.p99_ms:.2f} ms, lookup p99 {lookup.p99_ms:.2f} ms, "
            f"RSS {point.rss_bytes / 2**20:.0f} MiB",
            flush=True,
        )
        points.append(point)
    return points


def _measure(
    server: VaultServer,
    key: str,
    title: str,
    plan: Plan,
    fleet: Fleet,
    script_dir: Path,
    size: int,
) -> Measurement:
    result = Measurement(
        scenario=f"{key}-{size}", title=title, system=server.system, connections=16
    )
    try:
        spec = kv_read(server, size) if key == "kv-read" else token_lookup_self(server)
    except Unavailable as exc:
        result.status = UNAVAILABLE
        result.reason = str(exc)
        return result
    return measure(server, spec, result, plan.timing, fleet.cores.load, script_dir)


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
