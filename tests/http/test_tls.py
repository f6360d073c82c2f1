"""The TLS listener: TLS 1.2 at least, and client certificates when a
client CA is configured."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.http.certs import PKIFiles, make_pki
from tests.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKIFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


class TLSServer(ServerProcess):
    """A server whose readiness probe presents the client certificate, so
    that it also works when the listener requires one."""

    client_cert: tuple[str, str] | None = None

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                requests.get(
                    f"{self.url}/v1/sys/seal-status",
                    timeout=1,
                    verify=self.verify,
                    cert=self.client_cert,
                )
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")


def start_tls(
    directory: Path, pki: PKIFiles, listener_extra: str = ""
) -> ServerProcess:
    port = free_port()
    config = directory / "mssm.toml"
    config.write_text(
        "[listener]\n"
        f'address = "127.0.0.1:{port}"\n'
        f'tls_cert_file = "{pki.server_cert}"\n'
        f'tls_key_file = "{pki.server_key}"\n'
        f"{listener_extra}"
        "[storage]\n"
        'type = "inmem"\n'
    )
    server = TLSServer(
        f"https://127.0.0.1:{port}",
        config,
        directory / "server.log",
        verify=str(pki.ca_cert),
    )
    server.client_cert = (str(pki.client_cert), str(pki.client_key))
    server.start()
    return server


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles
) -> Iterator[ServerProcess]:
    server = start_tls(tmp_path_factory.mktemp("tls"), pki)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles
) -> Iterator[ServerProcess]:
    extra = f'tls_client_ca_file = "{pki.ca_cert}"\n'
    server = start_tls(tmp_path_factory.mktemp("mtls"), pki, extra)
    yield server
    server.stop()


def client_context(
    pki: PKIFiles,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    with_cert: bool = False,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if minimum < ssl.TLSVersion.TLSv1_2:
        # Let this client offer the old versions at all; OpenSSL's default
        # security level would otherwise refuse them before the server could.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = minimum
    context.maximum_version = maximum
    if with_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def handshake(server: ServerProcess, context: ssl.SSLContext) -> str:
    """Complete a TLS handshake; return the negotiated version."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version() or ""


def get_json(
    server: ServerProcess, context: ssl.SSLContext, path: str
) -> tuple[int, dict]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port_of(server), context=context, timeout=10
    )
    try:
        connection.request("GET", f"/v1/{path}")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls10_and_tls11_rejected(
    tls_server: ServerProcess, pki: PKIFiles, maximum: ssl.TLSVersion
) -> None:
    assert ssl.HAS_TLSv1
    assert ssl.HAS_TLSv1_1
    context = client_context(pki, ssl.TLSVersion.TLSv1, maximum)
    with pytest.raises(ssl.SSLError) as failure:
        handshake(tls_server, context)
    # The client did send its hello: the server ended the handshake. The
    # server's event loop closes the connection without flushing the
    # protocol_version alert, so the client sees an EOF.
    assert failure.value.reason != "NO_PROTOCOLS_AVAILABLE"

    # The same client settings work once TLS 1.2 is allowed.
    upgraded = client_context(pki, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2)
    assert handshake(tls_server, upgraded) == "TLSv1.2"


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
def test_tls12_and_tls13_accepted(
    tls_server: ServerProcess, pki: PKIFiles, version: ssl.TLSVersion, name: str
) -> None:
    context = client_context(pki, version, version)
    assert handshake(tls_server, context) == name
    status, body = get_json(tls_server, context, "sys/seal-status")
    assert status == 200
    assert body["type"] == "shamir"


def test_tls13_minimum_rejects_tls12(tmp_path: Path, pki: PKIFiles) -> None:
    server = start_tls(tmp_path, pki, 'tls_min_version = "tls13"\n')
    try:
        old = client_context(pki, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        with pytest.raises(ssl.SSLError):
            handshake(server, old)
        new = client_context(pki, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
        assert handshake(server, new) == "TLSv1.3"
    finally:
        server.stop()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_without_certificate_refused(
    mtls_server: ServerProcess, pki: PKIFiles, version: ssl.TLSVersion
) -> None:
    context = client_context(pki, version, version)
    # In TLS 1.3 the server checks the client certificate after the client
    # has finished its side of the handshake, so the refusal may only show
    # on the first read.
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.HTTPException)):
        get_json(mtls_server, context, "sys/seal-status")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_with_certificate_accepted(
    mtls_server: ServerProcess, pki: PKIFiles, version: ssl.TLSVersion
) -> None:
    context = client_context(pki, version, version, with_cert=True)
    status, body = get_json(mtls_server, context, "sys/seal-status")
    assert status == 200
    assert body["initialized"] is False


def test_plain_http_to_tls_listener_fails(tls_server: ServerProcess) -> None:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port_of(tls_server), timeout=10
    )
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            connection.request("GET", "/v1/sys/seal-status")
            connection.getresponse()
    finally:
        connection.close()


def test_missing_certificate_file_is_a_config_error(
    tmp_path: Path, pki: PKIFiles
) -> None:
    missing = PKIFiles(
        ca_cert=pki.ca_cert,
        server_cert=tmp_path / "absent.pem",
        server_key=pki.server_key,
        client_cert=pki.client_cert,
        client_key=pki.client_key,
    )
    with pytest.raises(RuntimeError, match="server exited early"):
        start_tls(tmp_path, missing)
    log = (tmp_path / "server.log").read_text()
    assert "Error: [listener] cannot load tls_cert_file" in log
    assert "absent.pem" in log
    assert "Traceback" not in log
