"""secrets enable/list/tune/disable against the dev server."""

from __future__ import annotations

import secrets

from tests.cli.conftest import CLI


def test_enable_list_tune_disable(cli: CLI) -> None:
    path = f"cli-kv-{secrets.token_hex(3)}"

    enable = cli(
        "secrets", "enable", f"-path={path}", "-version=2", "-description=team kv", "kv"
    )
    listed = cli("secrets", "list", "-format=json").json()
    tune = cli("secrets", "tune", "-default-lease-ttl=1h", "-max-lease-ttl=2h", path)
    tuned = cli("read", "-format=json", f"sys/mounts/{path}/tune").json()
    put = cli("kv", "put", f"{path}/app", "a=1")
    disable = cli("secrets", "disable", path)
    after = cli("secrets", "list", "-format=json").json()

    assert enable.code == 0
    assert enable.stdout == f"Success! Enabled the kv secrets engine at: {path}/\n"
    assert listed[f"{path}/"]["type"] == "kv"
    assert listed[f"{path}/"]["options"]["version"] == "2"
    assert listed[f"{path}/"]["description"] == "team kv"
    assert tune.code == 0
    assert tuned["data"]["default_lease_ttl"] == 3600
    assert tuned["data"]["max_lease_ttl"] == 7200
    assert put.code == 0
    assert disable.code == 0
    assert f"{path}/" not in after


def test_enable_kv_v1_put_get(cli: CLI) -> None:
    path = f"cli-kv1-{secrets.token_hex(3)}"
    cli("secrets", "enable", f"-path={path}", "kv-v1")

    put = cli("kv", "put", f"{path}/app", "a=1")
    get = cli("kv", "get", "-format=json", f"{path}/app")
    listed = cli("kv", "list", "-format=json", path)
    cli("secrets", "disable", path)

    assert put.stdout == f"Success! Data written to: {path}/app\n"
    assert get.json()["data"] == {"a": "1"}
    assert listed.json() == ["app"]


def test_list_table_has_header(cli: CLI) -> None:
    result = cli("secrets", "list")

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Path", "Type", "Accessor", "Description"]
    assert any(line.startswith("secret/ ") for line in lines)


def test_enable_existing_path_exit_two(cli: CLI) -> None:
    result = cli("secrets", "enable", "-path=secret", "kv")

    assert result.code == 2
    assert result.stderr.count("\n") == 1


def test_tune_without_settings_exit_one(cli: CLI) -> None:
    result = cli("secrets", "tune", "secret")

    assert result.code == 1
    assert "nothing to tune" in result.stderr
