"""Send a fixed list of requests over many keep-alive connections.

wrk runs for a duration, not for a number of requests, and its Lua scripts
cannot stop the run early, so filling a server with exactly N secrets or
leases uses this asyncio client instead.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import uvloop

RESPONSE_TIMEOUT_S = 60


@dataclass
class LoadResult:
    status_counts: collections.Counter[int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.status_counts.values())

    @property
    def failures(self) -> int:
        return sum(
            n for status, n in self.status_counts.items() if not 200 <= status < 300
        )

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0


@dataclass
class HttpRequest:
    method: str
    path: str
    body: bytes = b""


class _Response:
    """Parser callbacks for one HTTP/1.1 response."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def _encode(request: HttpRequest, host: str, token: str) -> bytes:
    head = (
        f"{request.method} {request.path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"X-Vault-Token: {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(request.body)}\r\n\r\n"
    )
    return head.encode() + request.body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    callbacks = _Response()
    parser = httptools.HttpResponseParser(callbacks)
    while not callbacks.complete:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("server closed the connection mid-response")
        parser.feed_data(chunk)
    return parser.get_status_code(), parser.should_keep_alive()


async def _worker(
    url: str,
    requests: Iterator[HttpRequest],
    token: str,
    context: ssl.SSLContext | None,
    counts: collections.Counter[int],
) -> None:
    parts = urlsplit(url)
    host_header = parts.netloc
    connection = None
    for request in requests:
        if connection is None:
            connection = await asyncio.open_connection(
                parts.hostname, parts.port, ssl=context
            )
        reader, writer = connection
        writer.write(_encode(request, host_header, token))
        status, keep_alive = await asyncio.wait_for(
            _read_response(reader), RESPONSE_TIMEOUT_S
        )
        counts[status] += 1
        if not keep_alive:
            writer.close()
            connection = None
    if connection is not None:
        connection[1].close()


async def _send_all(
    url: str,
    requests: Iterable[HttpRequest],
    token: str,
    connections: int,
    cafile: str | None,
) -> LoadResult:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    shared = iter(requests)
    counts: collections.Counter[int] = collections.Counter()
    started = time.perf_counter()
    workers = [_worker(url, shared, token, context, counts) for _ in range(connections)]
    await asyncio.gather(*workers)
    return LoadResult(counts, time.perf_counter() - started)


def send_all(
    url: str,
    requests: Iterable[HttpRequest],
    token: str,
    connections: int = 64,
    cafile: str | None = None,
) -> LoadResult:
    """Send every request, connections at a time; return the status counts."""
    return uvloop.run(_send_all(url, requests, token, connections, cafile))
