"""The database engine and sys/leases beside OpenBao: the same requests to
`bao server -dev` and to MSSM, both against the same local PostgreSQL,
compared by status code and response shape (keys and JSON types).

MSSM adds a few keys on purpose; EXTRA_KEYS names them, and everything
else must match.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.dbtargets import PostgresTarget, create_postgres_target, drop_postgres_target
from tests.openbao import BaoServer
from tests.server import ServerProcess, start_dev

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';"
]
# Keys MSSM adds to Vault's answers: the lease state in lookups (so that a
# failing revocation is visible) and verify_connection in config reads
# (Vault returns it; OpenBao 2.7 does not).
EXTRA_KEYS = {"state", "verify_connection"}


@dataclass
class Server:
    url: str
    token: str

    def call(
        self, method: str, path: str, body: dict | None = None
    ) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/v1/{path}",
            headers={"X-Vault-Token": self.token},
            json=body,
            timeout=30,
        )


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with BaoServer.dev(tmp_path_factory.mktemp("bao"), "root") as server:
        yield Server(server.url, server.root_token)


@pytest.fixture(scope="module")
def mssm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process: ServerProcess = start_dev(tmp_path_factory.mktemp("mssm"))
    try:
        yield Server(process.url, process.root_token)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def target() -> Iterator[PostgresTarget]:
    created = create_postgres_target()
    try:
        yield created
    finally:
        drop_postgres_target(created)


@pytest.fixture(scope="module")
def both(bao: Server, mssm: Server, target: PostgresTarget) -> list[Server]:
    role = f"r{target.marker}"
    for server in (bao, mssm):
        server.call("POST", "sys/mounts/database", {"type": "database"})
        config = target.config(allowed_roles=[role, "static"])
        assert server.call("POST", "database/config/pg", config).status_code == 204
        body = {
            "db_name": "pg",
            "creation_statements": CREATE,
            "default_ttl": "60s",
            "max_ttl": "180s",
        }
        assert server.call("POST", f"database/roles/{role}", body).status_code == 204
    return [bao, mssm]


def shape(value: Any) -> Any:
    """Reduce a JSON value to its keys and types."""
    if isinstance(value, dict):
        return {
            key: shape(item) for key, item in value.items() if key not in EXTRA_KEYS
        }
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    return type(value).__name__


def compare(both: list[Server], method: str, path: str, body: dict | None = None):
    """Send one request to both servers; assert equal status and shape."""
    bao_answer, mssm_answer = (s.call(method, path, body) for s in both)
    assert mssm_answer.status_code == bao_answer.status_code, (
        path,
        bao_answer.text,
        mssm_answer.text,
    )
    if bao_answer.status_code != 204:
        bao_shape = _envelope_shape(bao_answer.json())
        mssm_shape = _envelope_shape(mssm_answer.json())
        assert mssm_shape == bao_shape, (path, bao_answer.text, mssm_answer.text)
    return bao_answer, mssm_answer


def _envelope_shape(body: dict) -> Any:
    # Error lists and warnings are text; their presence is what matters.
    body = dict(body)
    body.pop("request_id", None)
    body.pop("mount_type", None)
    if body.get("errors"):
        body["errors"] = ["text"]
    if body.get("warnings"):
        body["warnings"] = ["text"]
    return shape(body)


def _lease(server: Server, role: str) -> str:
    answer = server.call("GET", f"database/creds/{role}")
    assert answer.status_code == 200, answer.text
    return answer.json()["lease_id"]


# -- comparisons ------------------------------------------------------------------


def test_config_and_role_reads(both: list[Server], target: PostgresTarget) -> None:
    role = f"r{target.marker}"
    compare(both, "GET", "database/config/pg")
    compare(both, "GET", f"database/roles/{role}")
    compare(both, "LIST", "database/roles")
    compare(both, "LIST", "database/config")
    compare(both, "GET", "database/roles/nosuch")
    compare(both, "GET", "database/config/nosuch")


def test_creds_answer(both: list[Server], target: PostgresTarget) -> None:
    bao_answer, mssm_answer = compare(both, "GET", f"database/creds/r{target.marker}")
    for answer in (bao_answer, mssm_answer):
        assert answer.json()["lease_duration"] == 60
        assert answer.json()["renewable"] is True
    compare(both, "GET", "database/creds/nosuch")


def test_lease_endpoints(both: list[Server], target: PostgresTarget) -> None:
    role = f"r{target.marker}"
    bao_lease, mssm_lease = (_lease(server, role) for server in both)
    pairs = list(zip(both, (bao_lease, mssm_lease), strict=True))
    answers = [
        s.call("PUT", "sys/leases/lookup", {"lease_id": lid}) for s, lid in pairs
    ]
    assert _envelope_shape(answers[1].json()) == _envelope_shape(answers[0].json())
    answers = [
        s.call("PUT", "sys/leases/renew", {"lease_id": lid, "increment": 120})
        for s, lid in pairs
    ]
    assert _envelope_shape(answers[1].json()) == _envelope_shape(answers[0].json())
    answers = [
        s.call("PUT", "sys/leases/renew", {"lease_id": lid, "increment": 1000})
        for s, lid in pairs
    ]
    assert _envelope_shape(answers[1].json()) == _envelope_shape(answers[0].json())
    assert answers[1].json()["warnings"]
    compare(both, "LIST", f"sys/leases/lookup/database/creds/{role}/")
    compare(both, "LIST", "sys/leases/lookup/database/creds/nosuch/")
    compare(both, "PUT", "sys/leases/lookup", {"lease_id": "database/creds/x/none"})
    compare(both, "PUT", "sys/leases/lookup", {})
    compare(both, "PUT", "sys/leases/renew", {"lease_id": "database/creds/x/none"})
    compare(both, "PUT", "sys/leases/revoke", {"lease_id": "database/creds/x/none"})
    compare(both, "GET", "sys/leases/count?type=irrevocable")
    compare(both, "GET", "sys/leases?type=irrevocable")
    compare(both, "POST", "sys/leases/tidy")
    for server, lease_id in pairs:
        answer = server.call("PUT", "sys/leases/revoke", {"lease_id": lease_id})
        assert answer.status_code == 204
    compare(both, "PUT", f"sys/leases/revoke-prefix/database/creds/{role}")


def test_password_policy_endpoints(both: list[Server]) -> None:
    policy = 'length = 24\nrule "charset" {\n  charset = "abc"\n  min-chars = 2\n}\n'
    compare(both, "PUT", "sys/policies/password/diff", {"policy": policy})
    compare(both, "GET", "sys/policies/password/diff")
    compare(both, "GET", "sys/policies/password/diff/generate")
    compare(both, "LIST", "sys/policies/password")
    compare(both, "GET", "sys/policies/password/nosuch")
    compare(both, "PUT", "sys/policies/password/bad", {"policy": "length = 3"})
    compare(both, "PUT", "sys/policies/password/bad", {})
    compare(both, "DELETE", "sys/policies/password/diff")


def test_static_role_endpoints(both: list[Server], target: PostgresTarget) -> None:
    account = f"svc_{target.marker}"
    with target.superuser() as conn:
        conn.execute(f"CREATE ROLE \"{account}\" LOGIN PASSWORD 'Init1al!'")
    body = {"db_name": "pg", "username": account, "rotation_period": "1h"}
    compare(both, "POST", "database/static-roles/static", body)
    compare(both, "GET", "database/static-roles/static")
    compare(both, "GET", "database/static-creds/static")
    compare(both, "LIST", "database/static-roles")
    compare(both, "POST", "database/rotate-role/static")
    compare(both, "GET", "database/static-creds/nosuch")
    compare(both, "POST", "database/rotate-role/nosuch")
    compare(both, "POST", "database/static-roles/x", {"db_name": "pg", "username": "y"})
    compare(both, "DELETE", "database/static-roles/static")


def test_remount_answers(both: list[Server]) -> None:
    for server in both:
        server.call("POST", "sys/mounts/moveme", {"type": "kv"})
    bao_answer, mssm_answer = compare(
        both, "POST", "sys/remount", {"from": "moveme", "to": "moved"}
    )
    time.sleep(1)
    answers = [
        server.call("GET", f"sys/remount/status/{answer.json()['migration_id']}")
        for server, answer in zip(both, (bao_answer, mssm_answer), strict=True)
    ]
    assert _envelope_shape(answers[1].json()) == _envelope_shape(answers[0].json())
    compare(both, "GET", "sys/remount/status/nosuch")
    compare(both, "POST", "sys/remount", {"from": "moved"})
    compare(both, "POST", "sys/remount", {"from": "nosuch", "to": "x2"})
