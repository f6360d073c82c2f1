"""Floors that are not HTTP servers: raw RSA signing and raw role creation.

Each runs in its own process, pinned to the server cores, and prints one
JSON object: the operation count, the seconds and the CPU seconds used.

    python -m bench.floors rsa --cores 0 --seconds 5
    python -m bench.floors postgres --cores 0 --seconds 10 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg
import uvloop
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from psycopg import sql

from bench.fixtures import POSTGRES_DSN, ROLE_PREFIX, drop_bench_roles

FLOOR_ROLE_PREFIX = f"{ROLE_PREFIX}floor_"
RSA_MESSAGE = b"mssm benchmark input"


@dataclass
class FloorResult:
    operations: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_operation(self) -> float:
        return self.cpu_seconds / max(self.operations, 1)


def measure(
    kind: str, cores: list[int], seconds: float, connections: int = 16
) -> FloorResult:
    """Run one floor in a child process and return what it measured."""
    command = [
        sys.executable,
        "-m",
        "bench.floors",
        kind,
        "--cores",
        ",".join(str(core) for core in cores),
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 300, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} floor failed: {completed.stderr.strip()}")
    return FloorResult(**json.loads(completed.stdout))


def _sign_loop(args: tuple[bytes, int | None, float]) -> int:
    pem, core, seconds = args
    if core is not None:
        os.sched_setaffinity(0, {core})
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)

    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        key.sign(RSA_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return count


def rsa_floor(cores: list[int | None], seconds: float) -> FloorResult:
    """Sign with PKCS#1 v1.5 and SHA-256 in one process per core."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    jobs = [(pem, core, seconds) for core in cores]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        counts = pool.map(_sign_loop, jobs)
    elapsed = time.perf_counter() - started
    return FloorResult(sum(counts), elapsed, _children_cpu())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _create_roles(worker: int, deadline: float) -> int:
    async with await psycopg.AsyncConnection.connect(
        POSTGRES_DSN, autocommit=True
    ) as conn:
        count = 0
        while time.perf_counter() < deadline:
            name = f"{FLOOR_ROLE_PREFIX}{worker}_{count}"
            statement = sql.SQL(
                "CREATE ROLE {} WITH LOGIN PASSWORD {} VALID UNTIL {}"
            ).format(
                sql.Identifier(name),
                sql.Literal(secrets.token_urlsafe(15)),
                sql.Literal("2099-01-01 00:00:00+00"),
            )
            await conn.execute(statement)
            count += 1
        return count


async def _postgres_rounds(connections: int, seconds: float) -> tuple[int, float]:
    started = time.perf_counter()
    deadline = started + seconds
    counts = await asyncio.gather(
        *(_create_roles(worker, deadline) for worker in range(connections))
    )
    return sum(counts), time.perf_counter() - started


def postgres_floor(connections: int, seconds: float) -> FloorResult:
    """Create login roles with the statement the database engine runs.

    Only CREATE ROLE is timed, because a creds request creates a role and its
    DROP ROLE comes later, at revocation; the roles are dropped afterwards.
    """
    drop_bench_roles(FLOOR_ROLE_PREFIX)
    cpu_before = _self_cpu()
    try:
        count, elapsed = uvloop.run(_postgres_rounds(connections, seconds))
        cpu = _self_cpu() - cpu_before
    finally:
        drop_bench_roles(FLOOR_ROLE_PREFIX)
    return FloorResult(count, elapsed, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure a library floor.")
    parser.add_argument("kind", choices=["rsa", "postgres"])
    parser.add_argument("--cores", default="", help="comma-separated CPU cores")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time")
    parser.add_argument(
        "--connections", type=int, default=16, help="PostgreSQL connections"
    )
    args = parser.parse_args()

    cores: list[int | None] = [int(c) for c in args.cores.split(",") if c] or [None]
    if args.kind == "rsa":
        result = rsa_floor(cores, args.seconds)
    else:
        pinned = {core for core in cores if core is not None}
        if pinned:
            os.sched_setaffinity(0, pinned)
        result = postgres_floor(args.connections, args.seconds)
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
