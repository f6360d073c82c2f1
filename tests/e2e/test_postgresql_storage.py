"""A server on PostgreSQL storage: a secret survives kill -9 and never reaches
the table in plain text, and a second server on the same table is rejected."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from tests.server import ROOT, ServerProcess, free_port, write_config
from tests.storage.postgresql_scratch import admin_query, scratch_schema, storage_url

SECRET_VALUE = "pepper-4f1c9e2b7d"


@pytest.fixture
def schema() -> Iterator[str]:
    with scratch_schema() as name:
        yield name


def postgresql_server(directory: Path, schema: str) -> ServerProcess:
    """Return a server, not yet started, that stores in schema."""
    storage = (
        f'[storage]\ntype = "postgresql"\nconnection_url = "{storage_url(schema)}"\n'
    )
    directory.mkdir(exist_ok=True)
    port = free_port()
    config = write_config(directory, port, storage=storage)
    return ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")


def table_bytes_on_disk(schema: str) -> bytes:
    """Return the table's heap and TOAST files as PostgreSQL wrote them."""
    # CHECKPOINT writes the dirty pages of shared buffers to the files.
    admin_query("CHECKPOINT")
    table = f"{schema}.mssm_entries"
    rows = admin_query(
        "SELECT pg_read_binary_file(pg_relation_filepath(c.oid)) FROM pg_class c "
        "WHERE c.oid = %s::regclass OR c.oid = "
        "(SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass)",
        (table, table),
    )
    assert len(rows) == 2
    return b"".join(row[0] for row in rows)


def test_secret_survives_kill_and_is_encrypted(tmp_path: Path, schema: str) -> None:
    server = postgresql_server(tmp_path, schema)
    server.start()
    try:
        server.init_and_unseal()
        client = hvac.Client(url=server.url, token=server.root_token)
        client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        client.secrets.kv.v2.create_or_update_secret(
            path="app/db", secret={"password": SECRET_VALUE}
        )

        server.kill()
        server.start()
        server.unseal()
        client = hvac.Client(url=server.url, token=server.root_token)
        read = client.secrets.kv.v2.read_secret_version(
            path="app/db", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"password": SECRET_VALUE}
    finally:
        server.stop()

    on_disk = table_bytes_on_disk(schema)
    # The keys are stored in plain text, so finding the mount table's key
    # shows that these are the table's bytes.
    assert b"core/mounts" in on_disk
    assert SECRET_VALUE.encode() not in on_disk
    rows = admin_query(f"SELECT key, value FROM {schema}.mssm_entries")
    assert len(rows) > 1
    for key, value in rows:
        assert SECRET_VALUE not in key
        assert SECRET_VALUE.encode() not in bytes(value)


def test_second_server_on_same_table_rejected(tmp_path: Path, schema: str) -> None:
    first = postgresql_server(tmp_path / "first", schema)
    second = postgresql_server(tmp_path / "second", schema)
    first.start()
    try:
        code = "from mssm.http.server import serve; raise SystemExit(serve(%r))"
        result = subprocess.run(
            [sys.executable, "-c", code % str(second.config_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 1
        assert "another MSSM node holds the lock" in result.stderr
        assert "several nodes on one database are not supported yet" in result.stderr
        status = first.request("GET", "sys/seal-status", token=None)
        assert status.status_code == 200
    finally:
        first.stop()
