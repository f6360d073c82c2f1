"""The server process: dev mode's defaults, a production server's empty
mount table, and clean shutdown on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e.fresh import start_initialised
from tests.server import ServerProcess


def test_dev_mode_mounts_kv2_and_prints_credentials(dev_server: ServerProcess) -> None:
    mount = dev_server.request("GET", "sys/mounts/secret").json()["data"]
    assert mount["type"] == "kv"
    assert mount["options"] == {"version": "2"}
    status = dev_server.request("GET", "sys/seal-status", token=None).json()
    assert status["sealed"] is False
    assert (status["t"], status["n"]) == (1, 1)
    assert status["storage_type"] == "inmem"

    log = dev_server.log_path.read_text()
    assert f"Root Token: {dev_server.root_token}" in log
    assert "Unseal Key: " in log


def test_production_server_starts_without_secrets_engines(tmp_path: Path) -> None:
    server = start_initialised(tmp_path, 1, 1)
    try:
        mounts = server.request("GET", "sys/mounts").json()["data"]
        assert "secret/" not in mounts
        assert not [path for path, mount in mounts.items() if mount["type"] == "kv"]
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    server = start_initialised(tmp_path, 1, 1)
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    server.request("POST", "secret/data/k", json={"data": {"v": "kept"}})
    server.stop(sig)

    assert server.proc is not None
    assert server.proc.returncode == 0
    log = server.log_path.read_text()
    assert "shutting down" in log
    assert "Traceback" not in log

    server.start()
    try:
        server.unseal()
        read = server.request("GET", "secret/data/k").json()["data"]["data"]
        assert read == {"v": "kept"}
    finally:
        server.stop()
