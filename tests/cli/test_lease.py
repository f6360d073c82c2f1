"""lease lookup/renew/revoke: argument handling and server errors.

Leases come from dynamic secrets engines; without one mounted, these tests
check the requests and errors on lease IDs that do not exist.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli.conftest import CLI


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
