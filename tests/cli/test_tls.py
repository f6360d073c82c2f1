"""TLS verification: -ca-cert, MSSM_CACERT, VAULT_CACERT and skip-verify."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli.conftest import (
    Result,
    Server,
    clean_env,
    free_port,
    run_mssm,
    start_server,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    is_ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        san = x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server with a certificate for 127.0.0.1 from a fresh test CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("cli test CA", ca_key, "cli test CA", ca_key, is_ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(
        "127.0.0.1", server_key, "cli test CA", ca_key, is_ca=False
    )

    pem = serialization.Encoding.PEM
    ca_file = _write_pem(tmp_path / "ca.pem", ca_cert.public_bytes(pem))
    cert_file = _write_pem(tmp_path / "tls.crt", server_cert.public_bytes(pem))
    key_bytes = server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = _write_pem(tmp_path / "tls.key", key_bytes)

    port = free_port()
    config = tmp_path / "mssm.toml"
    config.write_text(
        f'[listener]\naddress = "127.0.0.1:{port}"\n'
        f'tls_cert_file = "{cert_file}"\ntls_key_file = "{key_file}"\n'
        f'[storage]\ntype = "sqlite"\npath = "{tmp_path / "mssm.db"}"\n'
    )
    log_path = tmp_path / "server.log"
    process = start_server(["-config", str(config)], log_path)
    server = Server(f"https://127.0.0.1:{port}", process, log_path, config_path=config)
    try:
        server.wait_ready_tls(ca_file)
        yield server, ca_file
    finally:
        server.stop()


def status(server: Server, *flags: str, **env: str) -> Result:
    return run_mssm("status", *flags, env=clean_env(MSSM_ADDR=server.address, **env))


def test_unknown_ca_exit_two(tls_server: tuple[Server, Path]) -> None:
    server, _ = tls_server

    result = status(server)

    assert result.code == 2
    assert result.stderr.startswith(f"Error: TLS connection to {server.address} failed")
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert result.stderr.rstrip().endswith(
        "the CA file that signed the server certificate"
    )


def test_ca_cert_flag(tls_server: tuple[Server, Path]) -> None:
    server, ca_file = tls_server

    result = status(server, f"-ca-cert={ca_file}", "-format=json")

    # A new server is not initialised, so status exits 2 (sealed), with output.
    assert result.code == 2
    assert result.json()["initialized"] is False


def test_mssm_cacert_env(tls_server: tuple[Server, Path]) -> None:
    server, ca_file = tls_server

    result = status(server, "-format=json", MSSM_CACERT=str(ca_file))

    assert result.json()["sealed"] is True


def test_vault_cacert_env(tls_server: tuple[Server, Path]) -> None:
    server, ca_file = tls_server

    result = status(server, "-format=json", VAULT_CACERT=str(ca_file))

    assert result.json()["sealed"] is True


def test_skip_verify(tls_server: tuple[Server, Path]) -> None:
    server, _ = tls_server

    by_flag = status(server, "-tls-skip-verify", "-format=json")
    by_env = status(server, "-format=json", MSSM_SKIP_VERIFY="true")

    assert by_flag.json()["sealed"] is True
    assert by_env.json()["sealed"] is True
