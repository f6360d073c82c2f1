"""The floor: a bare ASGI app that returns one fixed JSON body.

It runs on uvicorn with the settings MSSM's listener uses: uvloop, the
httptools protocol (MSSM subclasses it to accept LIST), one worker in the
server process, no lifespan, no access log, no Server or Date header and the
same TLS context. The gap between it and MSSM is therefore the cost of
MSSM's own layers.

    python -m bench.floor --port 18301 --body-size 320 [--tls-cert C --tls-key K]
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

import uvicorn
import uvloop

_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_ENVELOPE = b'{"data":{"value":"'
_CLOSE = b'"}}'


def fixed_body(size: int) -> bytes:
    """Return a JSON object of exactly size bytes (at least the empty envelope)."""
    padding = max(0, size - len(_ENVELOPE) - len(_CLOSE))
    return _ENVELOPE + b"x" * padding + _CLOSE


class FloorApp:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        # Read the whole request body, as a real handler must.
        message = await receive()
        while message.get("more_body"):
            message = await receive()

        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": self.body})


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def build_config(args: argparse.Namespace) -> uvicorn.Config:
    options: dict[str, Any] = {}
    if args.tls_cert:
        options["ssl_certfile"] = args.tls_cert
        options["ssl_context_factory"] = lambda _config, _default: _tls_context(
            args.tls_cert, args.tls_key
        )

    return uvicorn.Config(
        FloorApp(fixed_body(args.body_size)),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fixed JSON body.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--body-size", type=int, default=320, help="response body size in bytes"
    )
    parser.add_argument("--tls-cert", default="", help="PEM certificate file")
    parser.add_argument("--tls-key", default="", help="PEM private key file")
    args = parser.parse_args()

    server = uvicorn.Server(build_config(args))
    uvloop.run(server.serve())


if __name__ == "__main__":
    main()
