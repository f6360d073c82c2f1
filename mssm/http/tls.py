"""The listener's TLS context: TLS 1.2 at least, optional client certificates."""

from __future__ import annotations

import ssl

from mssm.core.config import ListenerConfig

_MIN_VERSIONS = {"tls12": ssl.TLSVersion.TLSv1_2, "tls13": ssl.TLSVersion.TLSv1_3}


def server_context(listener: ListenerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MIN_VERSIONS[listener.tls_min_version]
    context.load_cert_chain(listener.tls_cert_file, listener.tls_key_file)
    if listener.tls_client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(listener.tls_client_ca_file)
    return context
