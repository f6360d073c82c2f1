"""Server configuration: every key the design lists parses, and anything
else is an error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssm.core.config import ConfigError, load_config, parse_config
from mssm.http.server import dev_config, serve
from tests.server import free_port

FULL_CONFIG = """
log_level = "debug"
default_lease_ttl = "1h"
max_lease_ttl = "768h"
[listener]
address = "127.0.0.1:18480"
tls_disable = false
tls_cert_file = "/etc/mssm/tls.crt"
tls_key_file = "/etc/mssm/tls.key"
tls_min_version = "tls13"
tls_client_ca_file = "/etc/mssm/ca.pem"
disable_unauthed_rekey_endpoints = false
max_request_size = 2048
[storage]
type = "sqlite"
path = "/var/lib/mssm/mssm.db"
connection_url = ""
[telemetry]
unauthenticated_metrics_access = true
[bootstrap]
init_allowed_networks = ["10.0.0.0/8"]
[[audit]]
type = "file"
path = "file"
options = { file_path = "/var/log/mssm/audit.log" }
[audit_api]
allow_api_audit_creation = false
allowed_directory = "/var/log/mssm"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mssm.toml"
    path.write_text(text)
    return str(path)


def test_every_documented_key_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_CONFIG))
    assert config.log_level == "debug"
    assert config.default_lease_ttl == 3600
    assert config.max_lease_ttl == 768 * 3600
    assert config.listener.tls_min_version == "tls13"
    assert config.listener.tls_client_ca_file == "/etc/mssm/ca.pem"
    assert config.listener.disable_unauthed_rekey_endpoints is False
    assert config.listener.max_request_size == 2048
    assert config.storage.path == "/var/lib/mssm/mssm.db"
    assert config.telemetry.unauthenticated_metrics_access is True
    assert config.bootstrap.init_allowed_networks == ["10.0.0.0/8"]
    assert config.audit[0].options == {"file_path": "/var/log/mssm/audit.log"}
    assert config.audit_api.allowed_directory == "/var/log/mssm"


def test_unknown_top_level_key_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown config keys: cluster_addr, ui"):
        parse_config({"ui": True, "cluster_addr": "x", "log_level": "info"})


def test_unknown_section_key_is_named() -> None:
    raw = {"listener": {"tls_disable": True, "adress": "127.0.0.1:1"}}
    with pytest.raises(ConfigError, match=r"unknown keys in \[listener\]: adress"):
        parse_config(raw)


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    text = '[listener]\ntls_disable = true\n[storage]\ntype = "inmem"\nsize = 3\n'
    with pytest.raises(ConfigError, match=r"unknown keys in \[storage\]: size"):
        load_config(write(tmp_path, text))


def test_wrong_type_names_key() -> None:
    raw = {"listener": {"tls_disable": "yes"}}
    with pytest.raises(ConfigError, match=r"\[listener\] tls_disable must be of type"):
        parse_config(raw)


def test_tls_needed_unless_disabled() -> None:
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        parse_config({"listener": {"address": "127.0.0.1:18481"}})


def test_bad_duration_names_key() -> None:
    raw = {"listener": {"tls_disable": True}, "max_lease_ttl": "2w"}
    with pytest.raises(ConfigError, match="invalid max_lease_ttl"):
        parse_config(raw)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[listener\n"))


def test_unauthed_rekey_allowed_by_default() -> None:
    config = parse_config({"listener": {"tls_disable": True}})
    assert config.listener.disable_unauthed_rekey_endpoints is False


def test_dev_mode_rejects_non_loopback_address() -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        dev_config(listen_address="0.0.0.0:18482")


def test_dev_mode_accepts_loopback_address() -> None:
    config = dev_config(listen_address="127.0.0.1:18483")
    assert config.listener.address == "127.0.0.1:18483"
    assert config.storage.type == "inmem"


def test_serve_dev_non_loopback_exits_with_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = serve(dev=True, dev_listen_address="192.0.2.10:18484")
    assert code == 1
    assert "192.0.2.10 is not a loopback address" in capsys.readouterr().err


def test_serve_unknown_key_exits_with_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = serve(config_path=write(tmp_path, "listen = 1\n"))
    assert code == 1
    assert "unknown config keys: listen" in capsys.readouterr().err


def test_sqlite_needs_path() -> None:
    # SQLite turns an empty file name into a temporary database that is
    # deleted when it closes, so every secret would go with the server.
    raw = {"listener": {"tls_disable": True}, "storage": {"type": "sqlite", "path": ""}}
    with pytest.raises(ConfigError, match=r"\[storage\] path is required"):
        parse_config(raw)


def test_postgresql_needs_connection_url() -> None:
    raw = {"listener": {"tls_disable": True}, "storage": {"type": "postgresql"}}
    with pytest.raises(ConfigError, match=r"\[storage\] connection_url is required"):
        parse_config(raw)


def test_postgresql_connection_url_scheme_checked() -> None:
    url = "mysql://admin:hunter2@db:3306/mssm"
    raw = {
        "listener": {"tls_disable": True},
        "storage": {"type": "postgresql", "connection_url": url},
    }
    with pytest.raises(ConfigError, match=r"must start with postgresql://") as caught:
        parse_config(raw)
    assert "hunter2" not in str(caught.value)


def test_postgresql_connection_url_accepted() -> None:
    url = "postgres://mssm:hunter2@db.example:5432/mssm?sslmode=verify-full"
    raw = {
        "listener": {"tls_disable": True},
        "storage": {"type": "postgresql", "connection_url": url},
    }
    assert parse_config(raw).storage.connection_url == url


@pytest.mark.parametrize(
    "url",
    [
        # libpq ends the host at the first "/", so "Ab3" becomes a port and
        # "xYsecret9@db:5432/mssm" the database name.
        "postgresql://mssm:Ab3/xYsecret9@db:5432/mssm",
        # libpq ends the user info at the first "@", so "xYsecret9@db"
        # becomes the host.
        "postgresql://mssm:Ab3@xYsecret9@db:5432/mssm",
        "postgresql://mssm@server:Ab3xYsecret9@db:5432/mssm",
    ],
)
def test_postgresql_unencoded_password_rejected(url: str) -> None:
    raw = {
        "listener": {"tls_disable": True},
        "storage": {"type": "postgresql", "connection_url": url},
    }
    with pytest.raises(ConfigError, match="not percent-encoded") as caught:
        parse_config(raw)
    assert "xYsecret9" not in str(caught.value)
    assert "Ab3" not in str(caught.value)


def test_postgresql_encoded_password_accepted() -> None:
    url = (
        "postgresql://mssm%40server:Ab3%2FxY%40secret9@db:5432/mssm"
        "?sslrootcert=/etc/mssm/db@2.pem"
    )
    raw = {
        "listener": {"tls_disable": True},
        "storage": {"type": "postgresql", "connection_url": url},
    }
    assert parse_config(raw).storage.connection_url == url


def test_serve_unreachable_postgresql_exits_with_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on a port just freed, so the connection is refused.
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/test"
    text = (
        '[listener]\ntls_disable = true\naddress = "127.0.0.1:18485"\n'
        f'[storage]\ntype = "postgresql"\nconnection_url = "{url}"\n'
    )
    code = serve(config_path=write(tmp_path, text))
    error = capsys.readouterr().err
    assert code == 1
    assert "Error: cannot open postgresql storage" in error
    assert "Connection refused" in error
    assert "hunter2" not in error
