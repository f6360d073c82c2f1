"""Data and configuration that scenarios need on a server, created once per server.

Each fixture stores its result in server.fixtures, so a second scenario that
needs the same keys or leases reuses them. A request the server rejects
raises Unavailable, which the report shows instead of a figure.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import psycopg
from psycopg import sql

from bench import loadgen
from bench.api import Unavailable
from bench.servers import VaultServer

logger = logging.getLogger("bench.fixtures")

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
POSTGRES_URL = "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres"
# Every PostgreSQL role the benchmark creates starts with this prefix, so the
# cleanup drops only the benchmark's own roles from the shared server.
ROLE_PREFIX = "mssmbench_"
CREATION_SQL = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';"
)
FILL_CONNECTIONS = 64
# The database engine's pool on both servers: the scenario's 16 connections.
POOL_CONNECTIONS = 16
# Roles dropped per transaction by the cleanup.
DROP_CHUNK = 1000
SECRET_VALUE = "s3cr3t-value-0123456789abcdef"
KV_READY_TIMEOUT_S = 30
# (transit key type, JWT algorithm, sign parameters that give the JWT's
# signature format, so OpenBao's transit sign does the same work as a JWT).
KEY_TYPES = (
    ("ed25519", "EdDSA", {}),
    (
        "ecdsa-p256",
        "ES256",
        {"hash_algorithm": "sha2-256", "marshaling_algorithm": "jws"},
    ),
    (
        "rsa-2048",
        "RS256",
        {"hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"},
    ),
)
SIGN_INPUT = base64.b64encode(b"mssm benchmark input").decode()


def kv_path(prefix: str, index: int) -> str:
    return f"secret/data/{prefix}/{index}"


def kv_secrets(server: VaultServer, count: int, prefix: str = "bench") -> int:
    """Write secrets prefix/0 .. prefix/count-1 that are not there yet."""
    key = f"kv:{prefix}"
    written = server.fixtures.get(key, 0)
    if written >= count:
        return written

    _wait_for_kv(server)
    started = time.perf_counter()
    body = f'{{"data":{{"value":"{SECRET_VALUE}"}}}}'.encode()
    requests = (
        loadgen.HttpRequest("POST", "/v1/" + kv_path(prefix, index), body)
        for index in range(written, count)
    )
    result = loadgen.send_all(
        server.url, requests, server.api.token, FILL_CONNECTIONS, _cafile(server)
    )
    if result.failures:
        raise Unavailable(f"KV fill failed: status counts {dict(result.status_counts)}")

    logger.info(
        "%s: wrote %d secrets in %.1f s (%.0f/s)",
        server.name,
        result.total,
        time.perf_counter() - started,
        result.rate,
    )
    server.fixtures[key] = count
    return count


def _wait_for_kv(server: VaultServer) -> None:
    # A new KV v2 mount on OpenBao returns 400 for a moment while it upgrades.
    deadline = time.monotonic() + KV_READY_TIMEOUT_S
    while True:
        response = server.api.request(
            "POST", kv_path("probe", 0), {"data": {"value": SECRET_VALUE}}
        )
        if response.ok:
            return
        if time.monotonic() > deadline or response.status in (404, 405):
            raise Unavailable(f"KV v2 write returned {response.describe()}")
        time.sleep(0.2)


def _cafile(server: VaultServer) -> str | None:
    return str(server.tls[0]) if server.tls else None


def kv_read_size(server: VaultServer) -> int:
    """Return the size in bytes of the body of one KV v2 read."""
    kv_secrets(server, 1)
    return len(server.api.raw_body("GET", kv_path("bench", 0)))


def transit_keys(server: VaultServer) -> None:
    """Mount transit/ and create one key of each type, named bench-TYPE."""
    if "transit" in server.fixtures:
        return
    mount = server.api.request("POST", "sys/mounts/transit", {"type": "transit"})
    if not mount.ok and "already in use" not in mount.describe():
        raise Unavailable(f"mounting transit/ returned {mount.describe()}")
    for key_type, _, _ in KEY_TYPES:
        server.api.call("POST", f"transit/keys/bench-{key_type}", {"type": key_type})
    server.fixtures["transit"] = True


def child_token(server: VaultServer) -> str:
    """Create a token with the default policy, which allows lookup-self."""
    if "token" not in server.fixtures:
        response = server.api.call(
            "POST", "auth/token/create", {"policies": ["default"], "ttl": "24h"}
        )
        server.fixtures["token"] = response.body["auth"]["client_token"]
    return server.fixtures["token"]


def database(server: VaultServer) -> None:
    """Mount database/ with a PostgreSQL connection and the roles bench and nop.

    bench creates a real login role per request; nop runs SELECT 1, so it
    makes leases without touching the role catalogue.
    """
    if "database" in server.fixtures:
        return
    mount = server.api.request("POST", "sys/mounts/database", {"type": "database"})
    if not mount.ok:
        raise Unavailable(f"mounting database/ returned {mount.describe()}")

    server.api.call(
        "POST",
        "database/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": POSTGRES_URL,
            "username": "postgres",
            # Trust authentication ignores it, but plugins require a value.
            "password": "unused",
            "allowed_roles": "*",
            # One PostgreSQL connection per wrk connection, as the floor has:
            # the default of 4 would measure the pool's queue instead.
            "max_open_connections": POOL_CONNECTIONS,
            "username_template": f"{ROLE_PREFIX}{server.system}_{{{{random 20}}}}",
        },
    )
    _database_role(server, "bench", [CREATION_SQL])
    _database_role(server, "nop", ["SELECT 1;"])
    server.fixtures["database"] = True
    _check_role_prefix(server)


def _database_role(server: VaultServer, name: str, creation: list[str]) -> None:
    body: dict[str, Any] = {
        "db_name": "pg",
        "creation_statements": creation,
        "default_ttl": "1h",
        "max_ttl": "24h",
    }
    if name == "nop":
        body |= {
            "revocation_statements": ["SELECT 1;"],
            "renew_statements": ["SELECT 1;"],
        }
    server.api.call("POST", f"database/roles/{name}", body)


def _check_role_prefix(server: VaultServer) -> None:
    creds = server.api.call("GET", "database/creds/bench")
    username = str(creds.data.get("username", ""))
    if not username.startswith(ROLE_PREFIX):
        # The cleanup could not find these roles by name, so the run would
        # leave thousands of roles behind in the shared PostgreSQL.
        raise Unavailable(
            f"username_template was not applied (got {username!r}); "
            f"expected a name starting with {ROLE_PREFIX}"
        )


def leases(server: VaultServer, count: int) -> list[str]:
    """Return the ids of count leases of the bench database role."""
    database(server)
    existing: list[str] = server.fixtures.setdefault("leases", [])
    while len(existing) < count:
        response = server.api.call("GET", "database/creds/bench")
        existing.append(response.body["lease_id"])
    return existing[:count]


def drop_bench_roles(prefix: str = ROLE_PREFIX) -> int:
    """Drop every PostgreSQL role whose name starts with prefix."""
    if not prefix.startswith(ROLE_PREFIX):
        raise ValueError(f"prefix {prefix!r} must start with {ROLE_PREFIX!r}")
    pattern = prefix.replace("_", "\\_") + "%"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (pattern,)
            )
        ]
        # Each dropped role holds a lock until its transaction ends, and
        # PostgreSQL's lock table (max_locks_per_transaction, 64 by default,
        # times max_connections) runs out after a few thousand.
        for start in range(0, len(names), DROP_CHUNK):
            with conn.transaction():
                for name in names[start : start + DROP_CHUNK]:
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    if names:
        logger.info("dropped %d benchmark roles from PostgreSQL", len(names))
    return len(names)


def jwt_signing_input(algorithm: str) -> str:
    """Return base64url(header) '.' base64url(claims) for the bench claims."""
    header = f'{{"alg":"{algorithm}","typ":"JWT"}}'.encode()
    claims = b'{"sub":"x"}'
    return f"{_b64url(header)}.{_b64url(claims)}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
