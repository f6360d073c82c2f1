"""Exit codes and one-line errors of the command itself, no server needed."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import ROOT, clean_env, free_port, run_mssm


def test_version_exit_zero() -> None:
    result = run_mssm("version", env=clean_env())

    assert result.code == 0
    assert result.stdout.startswith("MSSM v")


def test_python_m_mssm_runs_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "mssm", "version"],
        env=clean_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )

    assert completed.returncode == 0
    assert completed.stdout.startswith("MSSM v")


def test_help_flags_accepted() -> None:
    for flag in ("-h", "-help", "--help"):
        result = run_mssm("kv", "get", flag, env=clean_env())
        assert result.code == 0, flag
        assert "-mount" in result.stdout, flag


def test_unknown_flag_exit_one() -> None:
    result = run_mssm("kv", "get", "-badflag", "secret/x", env=clean_env())

    assert result.code == 1
    assert result.stderr == ("Error: unknown flag -badflag (see 'mssm kv get -help')\n")
    assert result.stdout == ""


def test_unknown_command_exit_one() -> None:
    result = run_mssm("frobnicate", env=clean_env())

    assert result.code == 1
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1


def test_missing_argument_exit_one() -> None:
    result = run_mssm("kv", "get", env=clean_env())

    assert result.code == 1
    assert "Missing argument 'PATH'" in result.stderr


def test_invalid_format_exit_one() -> None:
    result = run_mssm("status", "-format=yaml", env=clean_env())

    assert result.code == 1
    assert "'yaml' is not one of 'table', 'json'" in result.stderr


def test_invalid_format_env_exit_one() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = run_mssm("status", env=clean_env(MSSM_FORMAT="xml", MSSM_ADDR=address))

    assert result.code == 1
    assert result.stderr == (
        "Error: invalid output format 'xml' in MSSM_FORMAT: "
        "expected one of table, json\n"
    )


def test_connection_refused_exit_two() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = run_mssm("status", env=clean_env(MSSM_ADDR=address))

    assert result.code == 2
    assert result.stderr == f"Error: cannot connect to {address}: Connection refused\n"


def test_address_flag_beats_env() -> None:
    flag_port = free_port()
    flag_address = f"http://127.0.0.1:{flag_port}"
    env_address = f"http://127.0.0.1:{free_port(exclude=(flag_port,))}"
    env = clean_env(MSSM_ADDR=env_address)
    result = run_mssm("status", f"-address={flag_address}", env=env)

    assert result.code == 2
    assert flag_address in result.stderr


def test_vault_addr_fallback() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = run_mssm("status", env=clean_env(VAULT_ADDR=address))

    assert result.code == 2
    assert address in result.stderr


def test_missing_ca_cert_exit_one() -> None:
    address = f"https://127.0.0.1:{free_port()}"
    env = clean_env(MSSM_CACERT="/nonexistent/ca.pem", MSSM_ADDR=address)
    result = run_mssm("status", env=env)

    assert result.code == 1
    assert "CA certificate file /nonexistent/ca.pem not found" in result.stderr


def test_server_without_config_exit_one() -> None:
    result = run_mssm("server", env=clean_env())

    assert result.code == 1
    assert "missing -config FILE.toml" in result.stderr


def test_audit_group_registered() -> None:
    if not (ROOT / "mssm" / "cli" / "audit.py").exists():
        return
    result = run_mssm("audit", "-help", env=clean_env())

    assert result.code == 0
    assert "verify" in result.stdout
