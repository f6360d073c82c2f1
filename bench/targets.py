"""The performance targets MSSM is held to, checked against one run's figures."""

from __future__ import annotations

from dataclasses import dataclass

from bench.floors import FloorResult
from bench.measure import Measurement
from bench.scaling import ScalePoint
from bench.servers import FLOOR, MSSM, OPENBAO

MET = "met"
NOT_MET = "not met"
NOT_MEASURED = "not measured"

# Scenarios where MSSM must match OpenBao's throughput and p99 with audit on.
MATCH_OPENBAO = ("kv-read", "token-lookup-self", "sign-ed25519", "sign-ecdsa-p256")
FLOOR_SHARE_KV = 0.40
RSA_SHARE = 0.80
RSA_SCENARIOS = ("jwt-sign-RS256", "sign-rsa-2048")
POSTGRES_SHARE = 0.70
SCALE_P99_FACTOR = 1.5
SCALE_SIZE = 1_000_000
SCALE_BASE_SIZE = 1_000
RSS_LIMIT_BYTES = 300 * 10**6


@dataclass
class TargetCheck:
    target: str
    figure: str
    status: str


def find(results: list[Measurement], scenario: str, system: str) -> Measurement | None:
    for result in results:
        if result.scenario == scenario and result.system == system and result.ok:
            return result
    return None


def check_all(
    results: list[Measurement],
    rsa_floor: FloorResult | None,
    scale: list[ScalePoint],
) -> list[TargetCheck]:
    checks = [_match_openbao(results, key) for key in MATCH_OPENBAO]
    checks.append(_kv_floor_share(results))
    checks += [_rsa_share(results, key, rsa_floor) for key in RSA_SCENARIOS]
    checks.append(_postgres(results))
    checks += _scale(scale)
    return checks


def _match_openbao(results: list[Measurement], key: str) -> TargetCheck:
    target = f"{key}: MSSM req/s >= OpenBao's and p99 no higher (file audit on)"
    mssm = find(results, key, MSSM)
    bao = find(results, key, OPENBAO)
    if mssm is None or bao is None:
        return TargetCheck(target, "", NOT_MEASURED)

    figure = (
        f"{mssm.requests_per_s:,.0f} vs {bao.requests_per_s:,.0f} req/s; "
        f"p99 {mssm.p99_ms:.2f} vs {bao.p99_ms:.2f} ms"
    )
    met = mssm.requests_per_s >= bao.requests_per_s and mssm.p99_ms <= bao.p99_ms
    return TargetCheck(target, figure, MET if met else NOT_MET)


def _kv_floor_share(results: list[Measurement]) -> TargetCheck:
    target = f"kv-read with audit >= {FLOOR_SHARE_KV:.0%} of the bare ASGI floor"
    mssm = find(results, "kv-read", MSSM)
    floor = find(results, "kv-read", FLOOR)
    if mssm is None or floor is None:
        return TargetCheck(target, "", NOT_MEASURED)

    share = mssm.requests_per_s / floor.requests_per_s
    figure = (
        f"{share:.0%} ({mssm.requests_per_s:,.0f} of {floor.requests_per_s:,.0f} req/s)"
    )
    return TargetCheck(target, figure, MET if share >= FLOOR_SHARE_KV else NOT_MET)


def _rsa_share(
    results: list[Measurement], key: str, rsa_floor: FloorResult | None
) -> TargetCheck:
    target = (
        f"{key} >= {RSA_SHARE:.0%} of the `cryptography` RSA-2048 "
        "PKCS#1 v1.5 signing rate on the server cores"
    )
    mssm = find(results, key, MSSM)
    if mssm is None or rsa_floor is None:
        return TargetCheck(target, "", NOT_MEASURED)

    share = mssm.requests_per_s / rsa_floor.rate
    figure = (
        f"{share:.0%} ({mssm.requests_per_s:,.0f} of {rsa_floor.rate:,.0f} signs/s)"
    )
    return TargetCheck(target, figure, MET if share >= RSA_SHARE else NOT_MET)


def _postgres(results: list[Measurement]) -> TargetCheck:
    target = (
        f"database-creds >= {POSTGRES_SHARE:.0%} of the raw psycopg CREATE ROLE "
        "loop and ahead of OpenBao"
    )
    mssm = find(results, "database-creds", MSSM)
    floor = find(results, "database-creds", FLOOR)
    bao = find(results, "database-creds", OPENBAO)
    if mssm is None or floor is None or bao is None:
        return TargetCheck(target, "", NOT_MEASURED)

    share = mssm.requests_per_s / floor.requests_per_s
    figure = (
        f"{share:.0%} of {floor.requests_per_s:,.0f} roles/s; OpenBao "
        f"{bao.requests_per_s:,.0f} req/s"
    )
    met = share >= POSTGRES_SHARE and mssm.requests_per_s > bao.requests_per_s
    return TargetCheck(target, figure, MET if met else NOT_MET)


def _scale(scale: list[ScalePoint]) -> list[TargetCheck]:
    by_size = {point.size: point for point in scale if point.system == MSSM}
    base = by_size.get(SCALE_BASE_SIZE)
    large = by_size.get(SCALE_SIZE)

    latency_target = (
        f"1M secrets: KV read p99 <= {SCALE_P99_FACTOR}x the figure at 1k secrets"
    )
    memory_target = f"1M secrets: server RSS < {RSS_LIMIT_BYTES // 10**6} MB"
    if large is None or base is None or not (large.kv_read.ok and base.kv_read.ok):
        hint = "run with --full"
        return [
            TargetCheck(latency_target, hint, NOT_MEASURED),
            TargetCheck(memory_target, hint, NOT_MEASURED),
        ]

    large_p99, base_p99 = large.kv_read.p99_ms, base.kv_read.p99_ms
    factor = large_p99 / base_p99
    latency = TargetCheck(
        latency_target,
        f"{large_p99:.2f} ms vs {base_p99:.2f} ms ({factor:.2f}x)",
        MET if factor <= SCALE_P99_FACTOR else NOT_MET,
    )
    memory = TargetCheck(
        memory_target,
        f"{large.rss_bytes / 10**6:.0f} MB",
        MET if large.rss_bytes < RSS_LIMIT_BYTES else NOT_MET,
    )
    return [latency, memory]
