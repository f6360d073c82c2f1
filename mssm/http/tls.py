"""The listener's TLS context: TLS 1.2 at least, optional client certificates."""

from __future__ import annotations

import ssl

from mssm.core.config import ConfigError, ListenerConfig

_MIN_VERSIONS = {"tls12": ssl.TLSVersion.TLSv1_2, "tls13": ssl.TLSVersion.TLSv1_3}


def server_context(listener: ListenerConfig) -> ssl.SSLContext:
    """Build the server context; raise ConfigError naming the file that
    cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MIN_VERSIONS[listener.tls_min_version]
    try:
        context.load_cert_chain(listener.tls_cert_file, listener.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"[listener] cannot load tls_cert_file {listener.tls_cert_file!r} "
            f"with tls_key_file {listener.tls_key_file!r}: {_reason(exc)}"
        ) from None
    if listener.tls_client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(listener.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "[listener] cannot load tls_client_ca_file "
                f"{listener.tls_client_ca_file!r}: {_reason(exc)}"
            ) from None
    return context


def _reason(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
