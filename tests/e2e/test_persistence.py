"""Durability on SQLite: a restart keeps every secret and version behind the
seal, kill -9 loses no acknowledged write, and nothing secret reaches the
database files or the server log in plain text."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.e2e.fresh import start_initialised
from tests.server import ServerProcess


def write(server: ServerProcess, path: str, body: dict) -> dict:
    response = server.request("POST", path, json=body)
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else {}


def snapshot(server: ServerProcess, keys: list[str]) -> dict[str, Any]:
    """Metadata and every version's read result for each KV v2 key."""
    state: dict[str, Any] = {}
    for key in keys:
        meta = server.request("GET", f"secret/metadata/{key}").json()["data"]
        state[f"{key}/metadata"] = meta
        for version in meta["versions"]:
            response = server.request("GET", f"secret/data/{key}?version={version}")
            body = response.json()
            state[f"{key}/v{version}"] = (response.status_code, body.get("data"))
    return state


def populate(server: ServerProcess) -> None:
    write(server, "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    write(server, "sys/mounts/kv1", {"type": "kv"})
    write(server, "sys/mounts/secret/tune", {"default_lease_ttl": "1h"})
    write(server, "sys/mounts/secret/tune", {"max_lease_ttl": "2h"})
    for n in range(1, 4):
        write(server, "secret/data/app/pepper", {"data": {"pepper": f"pepper-{n}"}})
    write(server, "secret/delete/app/pepper", {"versions": [2]})
    write(server, "secret/destroy/app/pepper", {"versions": [1]})
    write(
        server,
        "secret/metadata/app/api-key",
        {"max_versions": 2, "custom_metadata": {"team": "payments"}},
    )
    for n in range(1, 4):
        write(server, "secret/data/app/api-key", {"data": {"key": f"api-{n}"}})
    write(server, "kv1/legacy", {"password": "v1-value"})
    write(server, "sys/rotate", {})


def test_restart_keeps_secrets_behind_seal(tmp_path: Path) -> None:
    server = start_initialised(tmp_path, 5, 3)
    try:
        populate(server)
        keys = ["app/pepper", "app/api-key"]
        before = snapshot(server, keys)
        tune_before = server.request("GET", "sys/mounts/secret/tune").json()["data"]
        server.stop()
        server.start()

        status = server.request("GET", "sys/seal-status", token=None).json()
        assert status["initialized"] is True
        assert status["sealed"] is True
        assert status["t"] == 3
        assert server.request("GET", "secret/data/app/pepper").status_code == 503

        server.unseal()
        assert snapshot(server, keys) == before
        assert before["app/pepper/v3"][1]["data"] == {"pepper": "pepper-3"}
        assert before["app/pepper/v2"][0] == 404
        assert before["app/pepper/v1"][1]["metadata"]["destroyed"] is True
        assert sorted(before["app/api-key/metadata"]["versions"]) == ["2", "3"]
        legacy = server.request("GET", "kv1/legacy").json()["data"]
        assert legacy == {"password": "v1-value"}
        tune_after = server.request("GET", "sys/mounts/secret/tune").json()["data"]
        assert tune_after == tune_before
        assert tune_after["default_lease_ttl"] == 3600
        assert tune_after["max_lease_ttl"] == 7200
        assert server.request("GET", "sys/key-status").json()["term"] == 2
    finally:
        server.stop()


class Writer(threading.Thread):
    """Writes until the server dies, recording each write it saw succeed."""

    def __init__(self, server: ServerProcess, prefix: str, same_key: bool) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.prefix = prefix
        self.same_key = same_key
        self.acknowledged: list[tuple[str, int, str]] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        session = requests.Session()
        headers = {"X-Vault-Token": self.server.root_token}
        for n in range(100_000):
            key = self.prefix if self.same_key else f"{self.prefix}/{n}"
            value = f"{self.prefix}-{n}-{secrets.token_hex(4)}"
            url = f"{self.server.url}/v1/secret/data/{key}"
            try:
                response = session.post(
                    url, json={"data": {"v": value}}, headers=headers, timeout=10
                )
            except requests.RequestException:
                return
            if response.status_code != 200:
                self.failure = AssertionError(f"{response.status_code} {response.text}")
                return
            self.acknowledged.append((key, response.json()["data"]["version"], value))


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    server = start_initialised(tmp_path, 1, 1)
    try:
        write(server, "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        # Keep every version of the single key, so none is pruned by the
        # default limit of 10.
        write(server, "secret/metadata/one", {"max_versions": 100_000})
        writers = [
            Writer(server, "many", same_key=False),
            Writer(server, "one", same_key=True),
        ]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(len(w.acknowledged) >= 40 for w in writers):
                break
            time.sleep(0.05)
        server.kill()
        for writer in writers:
            writer.join(timeout=30)

        server.start()
        server.unseal()
        for writer in writers:
            assert writer.failure is None
            assert len(writer.acknowledged) >= 40
            for key, version, value in writer.acknowledged:
                response = server.request("GET", f"secret/data/{key}?version={version}")
                assert response.status_code == 200, (key, version, response.text)
                assert response.json()["data"]["data"] == {"v": value}
    finally:
        server.stop()


def test_no_plaintext_in_database_or_log(tmp_path: Path) -> None:
    server = start_initialised(tmp_path, 3, 2, top='log_level = "debug"')
    try:
        value = "pepper-" + secrets.token_hex(16)
        write(server, "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        write(server, "sys/mounts/kv1", {"type": "kv"})
        write(server, "secret/data/app/pepper", {"data": {"pepper": value}})
        write(server, "kv1/app/pepper", {"pepper": value})
        read = server.request("GET", "secret/data/app/pepper").json()
        assert read["data"]["data"] == {"pepper": value}

        database = tmp_path / "mssm.db"
        wal = tmp_path / "mssm.db-wal"
        assert wal.exists()
        assert wal.stat().st_size > 0
        secret_strings = [value, server.root_token, *server.keys]
        files = [database, wal, server.log_path]
        assert_absent(files, secret_strings)

        server.stop()
        assert_absent([database, server.log_path], secret_strings)
    finally:
        server.stop()


def assert_absent(files: list[Path], needles: list[str]) -> None:
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in content, f"{needle[:8]}... found in {path}"
