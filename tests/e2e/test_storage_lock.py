"""One server per SQLite database: a second one on the same file exits with
a clear error, because each server caches what it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server import ROOT, ServerProcess, free_port, write_config


def sqlite_server(directory: Path, database: Path) -> ServerProcess:
    """Return a server, not yet started, that stores in database."""
    storage = f'[storage]\ntype = "sqlite"\npath = "{database}"\n'
    directory.mkdir(exist_ok=True)
    port = free_port()
    config = write_config(directory, port, storage=storage)
    return ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")


def serve_once(server: ServerProcess) -> subprocess.CompletedProcess:
    code = "from mssm.http.server import serve; raise SystemExit(serve(%r))"
    return subprocess.run(
        [sys.executable, "-c", code % str(server.config_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_second_server_on_same_database_rejected(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    first = sqlite_server(tmp_path / "first", database)
    second = sqlite_server(tmp_path / "second", database)
    first.start()
    try:
        result = serve_once(second)
        assert result.returncode == 1
        assert f"{database} is in use by another MSSM server" in result.stderr
        assert "Traceback" not in result.stderr
        status = first.request("GET", "sys/seal-status", token=None)
        assert status.status_code == 200
    finally:
        first.kill()

    # kill -9 leaves no stale lock: the kernel drops it with the process.
    second.start()
    try:
        status = second.request("GET", "sys/seal-status", token=None)
        assert status.status_code == 200
    finally:
        second.stop()


def test_missing_database_directory_reported(tmp_path: Path) -> None:
    database = tmp_path / "missing" / "mssm.db"
    result = serve_once(sqlite_server(tmp_path / "server", database))
    assert result.returncode == 1
    assert f"cannot open the lock file {database}.lock" in result.stderr
    assert "Traceback" not in result.stderr
