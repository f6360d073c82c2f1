"""kv put/get/patch/delete/list/metadata against a real dev server."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.cli.conftest import CLI


def unique_path() -> str:
    return f"secret/cli-test/{secrets.token_hex(4)}"


def test_put_get_json_round_trip(cli: CLI) -> None:
    path = unique_path()
    written = {"user": "alice", "password": "pa ss=word"}

    put = cli("kv", "put", path, "user=alice", "password=pa ss=word")
    get = cli("kv", "get", "-format=json", path)

    assert put.code == 0
    assert get.code == 0
    body = get.json()
    assert body["data"]["data"] == written
    assert body["data"]["metadata"]["version"] == 1


def test_put_table_shows_version(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")

    result = cli("kv", "put", path, "a=2")

    assert result.code == 0
    assert f"{path.replace('secret/', 'secret/data/', 1)}\n" in result.stdout
    version_line = [
        line for line in result.stdout.splitlines() if line.startswith("version")
    ]
    assert version_line == ["version            2"]


def test_get_field_prints_raw_value(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "token=abc def")

    result = cli("kv", "get", "-field=token", path)

    assert result.code == 0
    assert result.stdout == "abc def"


def test_get_field_missing_exit_one(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")

    result = cli("kv", "get", "-field=nope", path)

    assert result.code == 1
    assert result.stderr.startswith('Error: field "nope" is not present')


def test_mount_flag_equals_full_path(cli: CLI) -> None:
    name = f"cli-test/{secrets.token_hex(4)}"
    cli("kv", "put", "-mount=secret", name, "colour=blue")

    result = cli("kv", "get", "-format=json", f"secret/{name}")

    assert result.code == 0
    assert result.json()["data"]["data"] == {"colour": "blue"}


def test_get_table_lists_data(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "b=2", "a=1")

    result = cli("kv", "get", path)

    lines = result.stdout.splitlines()
    data_start = lines.index("== Data ==")
    assert lines[data_start + 1 :] == [
        "Key    Value",
        "---    -----",
        "a      1",
        "b      2",
    ]


def test_get_version_flag(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "v=one")
    cli("kv", "put", path, "v=two")

    old = cli("kv", "get", "-version=1", "-field=v", path)
    new = cli("kv", "get", "-field=v", path)

    assert old.stdout == "one"
    assert new.stdout == "two"


def test_value_from_file_and_stdin(cli: CLI, tmp_path: Path) -> None:
    path = unique_path()
    key_file = tmp_path / "key.pem"
    key_file.write_text("line1\nline2\n")

    put = cli("kv", "put", path, f"pem=@{key_file}", "pin=-", input="1234")
    body = cli("kv", "get", "-format=json", path).json()

    assert put.code == 0
    assert body["data"]["data"] == {"pem": "line1\nline2\n", "pin": "1234"}


def test_json_object_from_stdin(cli: CLI) -> None:
    path = unique_path()

    put = cli("kv", "put", path, "-", input='{"a": "1", "b": "2"}')
    body = cli("kv", "get", "-format=json", path).json()

    assert put.code == 0
    assert body["data"]["data"] == {"a": "1", "b": "2"}


def test_unreadable_value_file_exit_one(cli: CLI, tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"

    result = cli("kv", "put", unique_path(), f"pem=@{missing}")

    assert result.code == 1
    assert result.stderr == (
        f"Error: cannot read the value of field pem from {missing}: "
        "No such file or directory\n"
    )


def test_put_without_data_exit_one(cli: CLI) -> None:
    result = cli("kv", "put", unique_path())

    assert result.code == 1
    assert "missing data" in result.stderr


def test_cas_mismatch_one_line_error(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "password=first-secret")

    result = cli("kv", "put", "-cas=0", path, "password=second-secret")

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "Error: check-and-set parameter did not match the current version"
    )
    assert "HTTP 400" in result.stderr
    assert "second-secret" not in result.stderr
    assert "first-secret" not in result.stderr


def test_cas_match_writes(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")

    result = cli("kv", "put", "-cas=1", "-format=json", path, "a=2")

    assert result.code == 0
    assert result.json()["data"]["version"] == 2


def test_get_missing_exit_two(cli: CLI) -> None:
    path = unique_path()

    result = cli("kv", "get", path)

    assert result.code == 2
    data_path = path.replace("secret/", "secret/data/", 1)
    assert result.stderr == f"Error: no value found at {data_path} (HTTP 404)\n"


def test_bad_token_exit_two(cli: CLI) -> None:
    bad_token = "hvs.not-a-real-token-0123456789"

    result = cli("kv", "get", unique_path(), token=bad_token)

    assert result.code == 2
    assert "HTTP 403" in result.stderr
    assert bad_token not in result.stderr
    assert result.stderr.count("\n") == 1


def test_unmounted_path_exit_two(cli: CLI) -> None:
    result = cli("kv", "get", "no-such-mount/x")

    assert result.code == 2
    assert result.stderr.startswith("Error: ")


def test_patch_keeps_other_keys(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1", "b=2")

    patch = cli("kv", "patch", path, "b=3")
    body = cli("kv", "get", "-format=json", path).json()

    assert patch.code == 0
    assert body["data"]["data"] == {"a": "1", "b": "3"}
    assert body["data"]["metadata"]["version"] == 2


def test_patch_rw_method(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")

    patch = cli("kv", "patch", "-method=rw", path, "c=3")
    body = cli("kv", "get", "-format=json", path).json()

    assert patch.code == 0
    assert body["data"]["data"] == {"a": "1", "c": "3"}


def test_patch_missing_secret_exit_two(cli: CLI) -> None:
    result = cli("kv", "patch", unique_path(), "a=1")

    assert result.code == 2
    assert "HTTP 404" in result.stderr


def test_delete_undelete_destroy(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")
    cli("kv", "put", path, "a=2")

    delete = cli("kv", "delete", path)
    deleted = cli("kv", "get", "-format=json", path).json()
    undelete = cli("kv", "undelete", "-versions=2", path)
    restored = cli("kv", "get", "-field=a", path)
    destroy = cli("kv", "destroy", "-versions=1", path)
    metadata = cli("kv", "metadata", "get", "-format=json", path).json()

    assert delete.code == 0
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    assert undelete.code == 0
    assert restored.stdout == "2"
    assert destroy.code == 0
    assert metadata["data"]["versions"]["1"]["destroyed"] is True
    assert metadata["data"]["versions"]["2"]["destroyed"] is False


def test_delete_versions_soft_deletes(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")
    cli("kv", "put", path, "a=2")

    result = cli("kv", "delete", "-versions=1", path)
    metadata = cli("kv", "metadata", "get", "-format=json", path).json()

    assert result.code == 0
    assert metadata["data"]["versions"]["1"]["deletion_time"] != ""
    assert metadata["data"]["versions"]["2"]["deletion_time"] == ""


def test_undelete_without_versions_exit_one(cli: CLI) -> None:
    result = cli("kv", "undelete", unique_path())

    assert result.code == 1
    assert "-versions" in result.stderr


def test_bad_versions_exit_one(cli: CLI) -> None:
    result = cli("kv", "destroy", "-versions=1,x", unique_path())

    assert result.code == 1
    assert "invalid -versions entry 'x'" in result.stderr


def test_list_keys(cli: CLI) -> None:
    base = unique_path()
    cli("kv", "put", f"{base}/one", "a=1")
    cli("kv", "put", f"{base}/sub/two", "a=1")

    table = cli("kv", "list", base)
    as_json = cli("kv", "list", "-format=json", base)

    assert table.code == 0
    assert table.stdout == "Keys\n----\none\nsub/\n"
    assert as_json.json() == ["one", "sub/"]


def test_list_missing_exit_two(cli: CLI) -> None:
    result = cli("kv", "list", unique_path())

    assert result.code == 2
    assert "no value found" in result.stderr


def test_metadata_put_get_delete(cli: CLI) -> None:
    path = unique_path()
    cli("kv", "put", path, "a=1")

    put = cli(
        "kv",
        "metadata",
        "put",
        "-max-versions=4",
        "-custom-metadata=owner=ops",
        "-custom-metadata=tier=1",
        path,
    )
    got = cli("kv", "metadata", "get", "-format=json", path).json()
    table = cli("kv", "metadata", "get", path)
    delete = cli("kv", "metadata", "delete", path)
    after = cli("kv", "get", path)

    assert put.code == 0
    assert got["data"]["max_versions"] == 4
    assert got["data"]["custom_metadata"] == {"owner": "ops", "tier": "1"}
    assert "== Version 1 ==" in table.stdout
    assert delete.code == 0
    assert after.code == 2


def test_vault_env_names_work(cli: CLI, dev_server) -> None:  # noqa: ANN001
    path = unique_path()

    put = cli(
        "kv",
        "put",
        path,
        "a=1",
        token="",
        VAULT_ADDR=dev_server.address,
        VAULT_TOKEN=dev_server.root_token,
    )

    assert put.code == 0
