"""login, token and unwrap commands.

They need the server's token store; a missing route fails them by name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, Server


@pytest.fixture(autouse=True)
def token_store(needs_route: Callable[[str, str], None]) -> None:
    needs_route("GET", "auth/token/lookup-self")
    needs_route("PUT", "auth/token/create")


def create_token(cli: CLI, *flags: str) -> dict:
    result = cli("token", "create", "-format=json", *flags)
    assert result.code == 0, result.stderr
    return result.json()["auth"]


def test_login_writes_token_file(cli: CLI, dev_server: Server, home: Path) -> None:
    result = cli("login", dev_server.root_token, token="")

    token_file = home / ".mssm-token"
    assert result.code == 0
    assert token_file.read_text().strip() == dev_server.root_token
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600


def test_login_token_used_later(cli: CLI, dev_server: Server) -> None:
    cli("login", "-", token="", input=dev_server.root_token + "\n")

    result = cli("token", "lookup", "-format=json", token="")

    assert result.code == 0
    assert "root" in result.json()["data"]["policies"]


def test_login_tightens_old_file_mode(cli: CLI, dev_server: Server, home: Path) -> None:
    token_file = home / ".mssm-token"
    token_file.write_text("old\n")
    token_file.chmod(0o644)

    cli("login", dev_server.root_token, token="")

    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600


def test_login_bad_token_exit_two(cli: CLI, home: Path) -> None:
    bad_token = "hvs.bad-token-for-login-test"

    result = cli("login", bad_token, token="")

    assert result.code == 2
    assert "HTTP 403" in result.stderr
    assert bad_token not in result.stderr
    assert not (home / ".mssm-token").exists()


def test_create_with_flags(cli: CLI) -> None:
    auth = create_token(
        cli,
        "-policy=default",
        "-ttl=1h",
        "-use-limit=5",
        "-display-name=ci",
        "-metadata=team=ops",
    )
    lookup = cli("token", "lookup", "-format=json", auth["client_token"]).json()

    assert auth["lease_duration"] == 3600
    assert auth["policies"] == ["default"]
    assert lookup["data"]["num_uses"] == 5
    assert lookup["data"]["display_name"] == "token-ci"
    assert lookup["data"]["meta"] == {"team": "ops"}


def test_create_field_token(cli: CLI) -> None:
    result = cli("token", "create", "-policy=default", "-field=token")

    assert result.code == 0
    assert result.stdout
    assert "\n" not in result.stdout


def test_create_orphan_and_period(cli: CLI) -> None:
    auth = create_token(cli, "-orphan", "-period=2h", "-policy=default")
    lookup = cli("token", "lookup", "-format=json", auth["client_token"]).json()

    assert auth["orphan"] is True
    assert lookup["data"]["period"] == 7200


def test_lookup_by_accessor(cli: CLI) -> None:
    auth = create_token(cli, "-policy=default")

    result = cli("token", "lookup", "-accessor", "-format=json", auth["accessor"])

    assert result.code == 0
    assert result.json()["data"]["accessor"] == auth["accessor"]


def test_renew_increment(cli: CLI) -> None:
    auth = create_token(cli, "-ttl=10m", "-policy=default")

    result = cli(
        "token", "renew", "-increment=1h", "-format=json", auth["client_token"]
    )

    assert result.code == 0
    assert result.json()["auth"]["lease_duration"] == 3600


def test_revoke_then_lookup_fails(cli: CLI) -> None:
    auth = create_token(cli, "-policy=default")

    revoke = cli("token", "revoke", auth["client_token"])
    lookup = cli("token", "lookup", auth["client_token"])

    assert revoke.stdout == "Success! Revoked token (if it existed)\n"
    assert lookup.code == 2
    assert auth["client_token"] not in lookup.stderr


def test_revoke_self(cli: CLI) -> None:
    auth = create_token(cli, "-policy=default")

    revoke = cli("token", "revoke", "-self", token=auth["client_token"])
    lookup = cli("token", "lookup", auth["client_token"])

    assert revoke.code == 0
    assert lookup.code == 2


def test_capabilities_of_token(cli: CLI) -> None:
    auth = create_token(cli, "-policy=default")

    root = cli("token", "capabilities", "secret/data/x")
    limited = cli("token", "capabilities", auth["client_token"], "secret/data/x")

    assert root.stdout == "root\n"
    assert limited.stdout == "deny\n"


def test_wrapped_create_then_unwrap(cli: CLI) -> None:
    wrapped = cli("token", "create", "-wrap-ttl=5m", "-policy=default", "-format=json")
    wrapping_token = wrapped.json()["wrap_info"]["token"]

    unwrapped = cli("unwrap", "-format=json", wrapping_token)
    again = cli("unwrap", wrapping_token)

    assert unwrapped.code == 0
    assert unwrapped.json()["auth"]["policies"] == ["default"]
    assert again.code == 2
    assert wrapping_token not in again.stderr


def test_login_warns_when_env_token_set(cli: CLI, dev_server: Server) -> None:
    result = cli("login", "-no-store", dev_server.root_token)

    assert result.code == 0
    assert result.stderr.startswith("WARNING! MSSM_TOKEN or VAULT_TOKEN is set")
