"""operator backup: an online, still-encrypted copy that restores."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path

import requests

from tests.cli.conftest import Result, Server, clean_env, run_mssm, start_config_server
from tests.cli.test_operator import init, mssm

LISTENER = "[listener]\ntls_disable = true\n"


def mssm_local(*args: str) -> Result:
    """Run a command that needs no server (and must not contact one)."""
    return run_mssm(*args, env=clean_env())


def prepare(server: Server) -> str:
    """Initialise, unseal, mount KV v2 at secret/; return the unseal key."""
    key = init(server)["unseal_keys_b64"][0]
    assert mssm(server, "operator", "unseal", key).code == 0
    enable = mssm(server, "secrets", "enable", "-path=secret", "-version=2", "kv")
    assert enable.code == 0, enable.stderr
    return key


def count_entries(path: Path) -> int:
    uri = f"file:{path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]


def test_backup_copies_encrypted_entries(sqlite_server: Server, tmp_path: Path) -> None:
    prepare(sqlite_server)
    marker = "plain-" + secrets.token_hex(16)
    mssm(sqlite_server, "kv", "put", "secret/app", f"password={marker}")
    copy = tmp_path / "backup.db"

    result = mssm(
        sqlite_server,
        "operator",
        "backup",
        f"-config={sqlite_server.config_path}",
        str(copy),
    )

    assert result.code == 0, result.stderr
    assert count_entries(copy) == count_entries(tmp_path / "mssm.db")
    assert count_entries(copy) > 0
    assert marker.encode() not in copy.read_bytes()
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    assert not list(tmp_path.glob(".backup.db.*"))


def test_backup_during_writes_is_consistent(
    sqlite_server: Server, tmp_path: Path
) -> None:
    prepare(sqlite_server)
    stop = threading.Event()
    written: list[int] = []

    def write_loop() -> None:
        headers = {"X-Vault-Token": sqlite_server.root_token}
        while not stop.is_set():
            number = len(written)
            requests.put(
                f"{sqlite_server.address}/v1/secret/data/load/{number}",
                json={"data": {"n": str(number)}},
                headers=headers,
                timeout=10,
            ).raise_for_status()
            written.append(number)

    writer = threading.Thread(target=write_loop)
    writer.start()
    try:
        while len(written) < 20:
            time.sleep(0.05)
        copy = tmp_path / "busy.db"
        config = f"-config={sqlite_server.config_path}"
        result = mssm(sqlite_server, "operator", "backup", config, str(copy))
    finally:
        stop.set()
        writer.join()

    assert result.code == 0, result.stderr
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copied = count_entries(copy)
    assert 0 < copied <= count_entries(tmp_path / "mssm.db")
    assert f"Copied {copied} entries" in result.stdout


def test_backup_restores_after_restart(sqlite_server: Server, tmp_path: Path) -> None:
    key = prepare(sqlite_server)
    mssm(sqlite_server, "kv", "put", "secret/kept", "v=before")
    copy = tmp_path / "backup.db"
    config = sqlite_server.config_path
    assert config is not None
    mssm(sqlite_server, "operator", "backup", "-config", str(config), str(copy))
    mssm(sqlite_server, "kv", "put", "secret/lost", "v=after")
    sqlite_server.stop()

    database = tmp_path / "mssm.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, database)
    restored = start_config_server(config, tmp_path / "restored.log")
    restored.root_token = sqlite_server.root_token
    try:
        unseal = mssm(restored, "operator", "unseal", key)
        before_backup = mssm(restored, "kv", "get", "-field=v", "secret/kept")
        after_backup = mssm(restored, "kv", "get", "secret/lost")
    finally:
        restored.stop()

    assert unseal.code == 0
    assert before_backup.stdout == "before"
    assert after_backup.code == 2


def test_backup_refuses_existing_file(sqlite_server: Server, tmp_path: Path) -> None:
    existing = tmp_path / "exists.db"
    existing.write_bytes(b"keep me")

    result = mssm(
        sqlite_server,
        "operator",
        "backup",
        f"-config={sqlite_server.config_path}",
        str(existing),
    )

    assert result.code == 1
    assert result.stderr == (
        f"Error: {existing} already exists; remove it or choose another name\n"
    )
    assert existing.read_bytes() == b"keep me"


def test_backup_rejects_inmem_storage(tmp_path: Path) -> None:
    config = tmp_path / "inmem.toml"
    config.write_text(LISTENER + '[storage]\ntype = "inmem"\n')

    result = mssm_local("operator", "backup", f"-config={config}", str(tmp_path / "x"))

    assert result.code == 1
    assert "operator backup copies only sqlite storage" in result.stderr


def test_backup_missing_config_exit_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    result = mssm_local("operator", "backup", f"-config={missing}", str(tmp_path / "x"))

    assert result.code == 1
    assert result.stderr.startswith("Error: cannot read config file")


def test_backup_missing_database_exit_one(tmp_path: Path) -> None:
    config = tmp_path / "mssm.toml"
    storage = f'[storage]\ntype = "sqlite"\npath = "{tmp_path / "none.db"}"\n'
    config.write_text(LISTENER + storage)

    result = mssm_local("operator", "backup", f"-config={config}", str(tmp_path / "x"))

    assert result.code == 1
    assert "storage file" in result.stderr
    assert "not found" in result.stderr
