"""policy write/read/list/delete (server) and policy fmt (local)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, clean_env, run_mssm

RULES = 'path "secret/data/app/*" {\n  capabilities = ["read", "list"]\n}\n'


@pytest.fixture
def policy_store(needs_route: Callable[[str, str], None]) -> None:
    needs_route("GET", "sys/policies/acl?list=true")


def test_write_read_list_delete(cli: CLI, policy_store: None, tmp_path: Path) -> None:
    name = f"cli-{secrets.token_hex(3)}"
    rules_file = tmp_path / "app.hcl"
    rules_file.write_text(RULES)

    write = cli("policy", "write", name, str(rules_file))
    read = cli("policy", "read", name)
    listed = cli("policy", "list", "-format=json")
    delete = cli("policy", "delete", name)
    after = cli("policy", "read", name)

    assert write.stdout == f"Success! Uploaded policy: {name}\n"
    assert read.stdout == RULES + "\n"
    assert name in listed.json()
    assert delete.code == 0
    assert after.code == 2


def test_write_from_stdin(cli: CLI, policy_store: None) -> None:
    name = f"cli-{secrets.token_hex(3)}"

    write = cli("policy", "write", name, "-", input=RULES)
    read = cli("policy", "read", "-format=json", name)
    cli("policy", "delete", name)

    assert write.code == 0
    assert read.json()["data"]["policy"] == RULES


def test_write_invalid_policy_exit_two(cli: CLI, policy_store: None) -> None:
    result = cli("policy", "write", "broken", "-", input='path "x" { capabilities = ')

    assert result.code == 2
    assert result.stderr.count("\n") == 1


def test_write_missing_file_exit_one(tmp_path: Path) -> None:
    missing = tmp_path / "missing.hcl"

    result = run_mssm("policy", "write", "x", str(missing), env=clean_env())

    assert result.code == 1
    assert result.stderr == (
        f"Error: cannot read the policy from {missing}: No such file or directory\n"
    )


def test_fmt_rewrites_file(tmp_path: Path) -> None:
    policy = tmp_path / "messy.hcl"
    policy.write_text(
        '# who may read\npath "secret/*" {capabilities=["read","list"]\n'
        'allowed_parameters = { "a" = [] }\n}\n'
        'path "sys/*" { capabilities = ["deny"] }\n'
    )

    result = run_mssm("policy", "fmt", str(policy), env=clean_env())

    assert result.code == 0
    assert policy.read_text() == (
        "# who may read\n"
        "\n"
        'path "secret/*" {\n'
        '  capabilities       = ["read", "list"]\n'
        "  allowed_parameters = {\n"
        '    "a" = []\n'
        "  }\n"
        "}\n"
        "\n"
        'path "sys/*" {\n'
        '  capabilities = ["deny"]\n'
        "}\n"
    )


def test_fmt_is_idempotent(tmp_path: Path) -> None:
    policy = tmp_path / "p.hcl"
    policy.write_text('path "a/+/b" {\n capabilities = ["create", "update"]\n}')
    run_mssm("policy", "fmt", str(policy), env=clean_env())
    first = policy.read_text()

    run_mssm("policy", "fmt", str(policy), env=clean_env())

    assert policy.read_text() == first


def test_fmt_invalid_hcl_exit_one(tmp_path: Path) -> None:
    policy = tmp_path / "bad.hcl"
    policy.write_text('path "x" { capabilities = [')

    result = run_mssm("policy", "fmt", str(policy), env=clean_env())

    assert result.code == 1
    assert result.stderr.startswith(f"Error: invalid HCL in {policy}: ")
    assert policy.read_text() == 'path "x" { capabilities = ['
