"""read, write, list and delete on raw API paths."""

from __future__ import annotations

import secrets

from tests.cli.conftest import CLI


def test_write_read_round_trip(cli: CLI) -> None:
    name = f"cli-generic/{secrets.token_hex(4)}"

    write = cli("write", f"secret/data/{name}", "-", input='{"data": {"k": "v"}}')
    read = cli("read", "-format=json", f"secret/data/{name}")

    assert write.code == 0
    assert read.json()["data"]["data"] == {"k": "v"}


def test_write_prints_response_data(cli: CLI) -> None:
    name = f"cli-generic/{secrets.token_hex(4)}"

    result = cli(
        "write", "-format=json", f"secret/data/{name}", "-", input='{"data": {}}'
    )

    assert result.code == 0
    assert result.json()["data"]["version"] == 1


def test_read_field(cli: CLI) -> None:
    name = f"cli-generic/{secrets.token_hex(4)}"
    cli("kv", "put", f"secret/{name}", "k=v")

    result = cli("read", "-field=metadata", f"secret/data/{name}")

    assert result.code == 0
    assert result.stdout.startswith("map[created_time:")


def test_read_missing_exit_two(cli: CLI) -> None:
    result = cli("read", "secret/data/cli-generic/missing")

    assert result.code == 2
    assert result.stderr == (
        "Error: no value found at secret/data/cli-generic/missing (HTTP 404)\n"
    )


def test_write_without_data_exit_one(cli: CLI) -> None:
    result = cli("write", "secret/data/x")

    assert result.code == 1
    assert "missing data" in result.stderr


def test_write_rejected_exit_two(cli: CLI) -> None:
    result = cli("write", "secret/data/x", "data=not-an-object")

    assert result.code == 2
    assert "HTTP 400" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "not-an-object" not in result.stderr


def test_invalid_pair_exit_one(cli: CLI) -> None:
    result = cli("write", "secret/data/x", "a=1", "secretvalue")

    assert result.code == 1
    assert result.stderr == (
        "Error: invalid data argument #2: expected KEY=VALUE, KEY=@FILE, KEY=- or -\n"
    )


def test_invalid_stdin_json_exit_one(cli: CLI) -> None:
    result = cli("write", "secret/data/x", "-", input='{"password": "hunter2"')

    assert result.code == 1
    assert result.stderr.startswith("Error: invalid JSON in stdin")
    assert "hunter2" not in result.stderr


def test_list_and_delete(cli: CLI) -> None:
    base = f"cli-generic/{secrets.token_hex(4)}"
    cli("kv", "put", f"secret/{base}/a", "k=v")

    listed = cli("list", "-format=json", f"secret/metadata/{base}")
    delete = cli("delete", f"secret/metadata/{base}/a")
    after = cli("list", f"secret/metadata/{base}")

    assert listed.json() == ["a"]
    assert delete.code == 0
    assert delete.stdout == (
        f"Success! Data deleted (if it existed) at: secret/metadata/{base}/a\n"
    )
    assert after.code == 2
