"""The scenarios: the requests each one sends to MSSM and to OpenBao.

A scenario's build function prepares a server (keys, secrets, leases) and
returns the request wrk repeats against it. OpenBao has no JWT paths, so
the JWT scenarios send it a transit sign or verify of the same signing
input with the same signature format.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import fixtures
from bench.api import Unavailable
from bench.servers import DISK_STORAGE, MAIN, MSSM, NO_AUDIT, TLS, VaultServer
from bench.wrk import RequestSpec

HTTP_FLOOR = "http"
POSTGRES_FLOOR = "psycopg"
KV_KEYS = 1000
# More leases than connections, renewed in turn: concurrent renewals of one
# lease are a different test, and MSSM 0.1 fails some of them (PostgreSQL
# "tuple concurrently updated" from parallel ALTER ROLE).
RENEW_LEASES = 64
RENEW_INCREMENT_S = 3600


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    build: Callable[[VaultServer], RequestSpec]
    # The HTTP method, which the floor server's request copies.
    method: str = "GET"
    connections: int = 16
    variant: str = MAIN
    # OpenBao's server for this scenario, when it differs from variant.
    openbao_variant: str = ""
    openbao_note: str = ""
    floor: str = HTTP_FLOOR


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _root(server: VaultServer) -> dict[str, str]:
    return {"X-Vault-Token": server.api.token}


def kv_read(server: VaultServer, key_count: int = KV_KEYS) -> RequestSpec:
    fixtures.kv_secrets(server, key_count)
    return RequestSpec(
        "GET", "/v1/secret/data/bench/", headers=_root(server), key_count=key_count
    )


def kv_write(server: VaultServer) -> RequestSpec:
    fixtures.kv_secrets(server, 1)
    body = _json({"data": {"value": fixtures.SECRET_VALUE}})
    return RequestSpec(
        "POST",
        "/v1/secret/data/bench-write/",
        body=body,
        headers=_root(server),
        key_count=KV_KEYS,
    )


def token_lookup_self(server: VaultServer) -> RequestSpec:
    token = fixtures.child_token(server)
    return RequestSpec(
        "GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}
    )


def _key_type(algorithm_or_type: str) -> tuple[str, str, dict[str, str]]:
    for entry in fixtures.KEY_TYPES:
        if algorithm_or_type in entry[:2]:
            return entry
    raise ValueError(f"unknown key type or JWT algorithm {algorithm_or_type!r}")


def transit_sign(key_type: str) -> Callable[[VaultServer], RequestSpec]:
    def build(server: VaultServer) -> RequestSpec:
        fixtures.transit_keys(server)
        _, _, params = _key_type(key_type)
        body = _json({"input": fixtures.SIGN_INPUT, **params})
        return RequestSpec(
            "POST",
            f"/v1/transit/sign/bench-{key_type}",
            body=body,
            headers=_root(server),
        )

    return build


def jwt_sign(algorithm: str) -> Callable[[VaultServer], RequestSpec]:
    def build(server: VaultServer) -> RequestSpec:
        fixtures.transit_keys(server)
        key_type, _, params = _key_type(algorithm)
        if server.system == MSSM:
            path = f"/v1/transit/jwt/sign/bench-{key_type}"
            body = _json({"claims": {"sub": "x"}})
        else:
            path = f"/v1/transit/sign/bench-{key_type}"
            signing_input = fixtures.jwt_signing_input(algorithm)
            body = _json({"input": _b64(signing_input), **params})
        return RequestSpec("POST", path, body=body, headers=_root(server))

    return build


def jwt_verify(algorithm: str) -> Callable[[VaultServer], RequestSpec]:
    def build(server: VaultServer) -> RequestSpec:
        fixtures.transit_keys(server)
        key_type, _, params = _key_type(algorithm)
        if server.system == MSSM:
            signed = server.api.call(
                "POST", f"transit/jwt/sign/bench-{key_type}", {"claims": {"sub": "x"}}
            )
            token = signed.data.get("token")
            if not token:
                raise Unavailable(f"JWT sign returned no token: {signed.data}")
            path = f"/v1/transit/jwt/verify/bench-{key_type}"
            body = _json({"token": token})
        else:
            signing_input = _b64(fixtures.jwt_signing_input(algorithm))
            signed = server.api.call(
                "POST",
                f"transit/sign/bench-{key_type}",
                {"input": signing_input, **params},
            )
            path = f"/v1/transit/verify/bench-{key_type}"
            body = _json(
                {
                    "input": signing_input,
                    "signature": signed.data["signature"],
                    **params,
                }
            )
        return RequestSpec("POST", path, body=body, headers=_root(server))

    return build


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def database_creds(server: VaultServer) -> RequestSpec:
    fixtures.database(server)
    return RequestSpec("GET", "/v1/database/creds/bench", headers=_root(server))


def lease_renew(server: VaultServer) -> RequestSpec:
    lease_ids = fixtures.leases(server, RENEW_LEASES)
    bodies = [
        _json({"lease_id": lease_id, "increment": RENEW_INCREMENT_S})
        for lease_id in lease_ids
    ]
    return RequestSpec(
        "PUT", "/v1/sys/leases/renew", headers=_root(server), bodies=bodies
    )


_SIGN_NOTE = "OpenBao: transit sign of the same signing input"
_VERIFY_NOTE = "OpenBao: transit verify of the same signing input"


def all_scenarios() -> list[Scenario]:
    """Return every scenario, in the order the run measures them."""
    scenarios = [
        Scenario("kv-read", "KV v2 read", kv_read),
        Scenario(
            "kv-write",
            "KV v2 write",
            kv_write,
            method="POST",
            openbao_variant=DISK_STORAGE,
            openbao_note="OpenBao on Raft storage, which writes to disk",
        ),
        Scenario("token-lookup-self", "Token lookup-self", token_lookup_self),
    ]
    for key_type, _, _ in fixtures.KEY_TYPES:
        scenarios.append(
            Scenario(
                f"sign-{key_type}",
                f"Transit sign {key_type}",
                transit_sign(key_type),
                method="POST",
            )
        )
    for _, algorithm, _ in fixtures.KEY_TYPES:
        scenarios.append(
            Scenario(
                f"jwt-sign-{algorithm}",
                f"JWT sign {algorithm}",
                jwt_sign(algorithm),
                method="POST",
                openbao_note=_SIGN_NOTE,
            )
        )
    for _, algorithm, _ in fixtures.KEY_TYPES:
        scenarios.append(
            Scenario(
                f"jwt-verify-{algorithm}",
                f"JWT verify {algorithm}",
                jwt_verify(algorithm),
                method="POST",
                openbao_note=_VERIFY_NOTE,
            )
        )
    scenarios += [
        Scenario(
            "database-creds",
            "Database creds (PostgreSQL)",
            database_creds,
            floor=POSTGRES_FLOOR,
        ),
        Scenario("lease-renew", "Lease renew", lease_renew, method="PUT"),
        Scenario("kv-read-c1", "KV v2 read", kv_read, connections=1),
        Scenario("kv-read-c64", "KV v2 read", kv_read, connections=64),
        Scenario("kv-read-tls", "KV v2 read, TLS", kv_read, variant=TLS),
        Scenario("kv-read-noaudit", "KV v2 read, no audit", kv_read, variant=NO_AUDIT),
    ]
    return scenarios
