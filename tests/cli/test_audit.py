"""`mssm audit enable|list|disable|verify` as a subprocess against a server
whose config allows audit devices through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Result, clean_env, run_mssm
from tests.server import ServerProcess, start_production


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = Path(tmp_path_factory.mktemp("cli-audit"))
    extra = (
        "[audit_api]\nallow_api_audit_creation = true\n"
        f'allowed_directory = "{directory}"\n'
    )
    server = start_production(directory, extra=extra)
    yield server
    server.stop()


def mssm(server: ServerProcess, *args: str) -> Result:
    env = clean_env(MSSM_ADDR=server.url, MSSM_TOKEN=server.root_token)
    return run_mssm(*args, env=env)


def test_enable_list_disable(server: ServerProcess) -> None:
    assert server.config_path is not None
    log = server.config_path.parent / "cli.log"
    enabled = mssm(server, "audit", "enable", "file", f"file_path={log}")
    assert enabled.code == 0, enabled.stderr
    assert enabled.stdout == "Success! Enabled the file audit device at: file/\n"

    table = mssm(server, "audit", "list")
    assert table.stdout.splitlines()[0].split() == ["Path", "Type", "Description"]
    assert table.stdout.splitlines()[2].split() == ["file/", "file", "n/a"]
    detailed = mssm(server, "audit", "list", "-detailed")
    assert f"file_path={log}" in detailed.stdout
    listed = json.loads(mssm(server, "audit", "list", "-format=json").stdout)
    assert listed["data"]["file/"]["options"] == {"file_path": str(log)}

    disabled = mssm(server, "audit", "disable", "file")
    assert disabled.code == 0
    assert "Disabled audit device" in disabled.stdout
    empty = mssm(server, "audit", "list")
    assert empty.stdout == "No audit devices are enabled.\n"


def test_enable_with_path_and_description(server: ServerProcess) -> None:
    assert server.config_path is not None
    log = server.config_path.parent / "named.log"
    enabled = mssm(
        server,
        "audit",
        "enable",
        "-path=named",
        "-description=kept for a year",
        "file",
        f"file_path={log}",
    )
    assert enabled.code == 0, enabled.stderr
    listed = json.loads(mssm(server, "audit", "list", "-format=json").stdout)
    assert listed["data"]["named/"]["description"] == "kept for a year"
    mssm(server, "audit", "disable", "named")


def test_server_error_is_one_line(server: ServerProcess) -> None:
    refused = mssm(server, "audit", "enable", "file", "file_path=/elsewhere.log")
    assert refused.code == 2
    assert refused.stderr.startswith("Error: file_path '/elsewhere.log' is outside")
    assert refused.stderr.count("\n") == 1


def test_verify_checks_server_log(server: ServerProcess) -> None:
    assert server.config_path is not None
    log = server.config_path.parent / "verified.log"
    mssm(server, "audit", "enable", "-path=verified", "file", f"file_path={log}")
    mssm(server, "audit", "list")
    key = server.request("GET", "sys/audit/checkpoint").json()["public_key"]
    result = mssm(server, "audit", "verify", str(log), "-public-key", key)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK: ")
    mssm(server, "audit", "disable", "verified")


def test_verify_local_errors(server: ServerProcess, tmp_path: Path) -> None:
    bad_key = mssm(server, "audit", "verify", str(tmp_path), "-public-key", "x")
    assert bad_key.code == 1
    missing = mssm(
        server,
        "audit",
        "verify",
        str(tmp_path / "none.log"),
        "-public-key",
        "A" * 43 + "=",
    )
    assert missing.code == 1
    assert "cannot read" in missing.stderr
    no_key = mssm(server, "audit", "verify", str(tmp_path / "none.log"))
    assert no_key.code == 1
