"""lease lookup/renew/revoke on real database credentials and bad IDs.

The leases come from the database engine with a real PostgreSQL at
127.0.0.1:5432 (user postgres, trust authentication).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.cli.conftest import CLI

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CREATION = (
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';"
)


@pytest.fixture(autouse=True)
def lease_routes(needs_route: Callable[[str, str], None]) -> None:
    needs_route("PUT", "sys/leases/lookup")


def test_lookup_unknown_lease_exit_two(cli: CLI) -> None:
    result = cli("lease", "lookup", "database/creds/app/unknown")

    assert result.code == 2
    assert result.stderr.startswith("Error: ")
    assert "HTTP 400" in result.stderr


def test_renew_unknown_lease_exit_two(cli: CLI) -> None:
    result = cli("lease", "renew", "-increment=1h", "database/creds/app/unknown")

    assert result.code == 2
    assert result.stderr.count("\n") == 1


def test_revoke_prefix_succeeds(cli: CLI) -> None:
    result = cli("lease", "revoke", "-prefix", "database/creds/nothing-here/")

    assert result.code == 0
    assert result.stdout == (
        "Success! Revoked all leases with prefix: database/creds/nothing-here/\n"
    )


def test_force_without_prefix_exit_one(cli: CLI) -> None:
    result = cli("lease", "revoke", "-force", "database/creds/app/x")

    assert result.code == 1
    assert "-force works only together with -prefix" in result.stderr


@pytest.fixture
def database_mount(cli: CLI) -> Iterator[str]:
    """Mount the database engine with a PostgreSQL role "app"; yield the mount."""
    mount = f"cli-db-{secrets.token_hex(3)}"
    enabled = cli("secrets", "enable", f"-path={mount}", "database")
    assert enabled.code == 0, enabled.stderr
    config = cli(
        "write",
        f"{mount}/config/pg",
        "plugin_name=postgresql-database-plugin",
        "connection_url=postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres",
        "username=postgres",
        "password=unused-with-trust-auth",
        "allowed_roles=app",
    )
    role = cli(
        "write",
        f"{mount}/roles/app",
        "db_name=pg",
        f"creation_statements={CREATION}",
        "default_ttl=1h",
        "max_ttl=2h",
    )
    assert config.code == 0, config.stderr
    assert role.code == 0, role.stderr
    yield mount
    cli("lease", "revoke", "-prefix", f"{mount}/creds/app")
    cli("secrets", "disable", mount)


def role_exists(name: str) -> bool:
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        return row.fetchone() is not None


def issue_credentials(cli: CLI, mount: str) -> dict:
    result = cli("read", "-format=json", f"{mount}/creds/app")
    assert result.code == 0, result.stderr
    return result.json()


def test_lookup_renew_revoke_lease(cli: CLI, database_mount: str) -> None:
    issued = issue_credentials(cli, database_mount)
    lease_id = issued["lease_id"]
    username = issued["data"]["username"]

    lookup = cli("lease", "lookup", "-format=json", lease_id)
    renew = cli("lease", "renew", "-increment=30m", "-format=json", lease_id)
    existed = role_exists(username)
    revoke = cli("lease", "revoke", lease_id)
    after = cli("lease", "lookup", lease_id)

    assert lookup.json()["data"]["id"] == lease_id
    assert lookup.json()["data"]["renewable"] is True
    assert renew.json()["lease_duration"] == 1800
    assert existed is True
    assert revoke.stdout == f"Success! Revoked lease: {lease_id}\n"
    assert not role_exists(username)
    assert after.code == 2


def test_lease_table_output(cli: CLI, database_mount: str) -> None:
    result = cli("read", f"{database_mount}/creds/app")

    lines = result.stdout.splitlines()
    assert lines[2].startswith(f"lease_id           {database_mount}/creds/app/")
    assert lines[3] == "lease_duration     1h"
    assert lines[4] == "lease_renewable    true"


def test_revoke_prefix_removes_users(cli: CLI, database_mount: str) -> None:
    first = issue_credentials(cli, database_mount)["data"]["username"]
    second = issue_credentials(cli, database_mount)["data"]["username"]

    result = cli("lease", "revoke", "-prefix", f"{database_mount}/creds/app")

    assert result.code == 0
    assert not role_exists(first)
    assert not role_exists(second)
