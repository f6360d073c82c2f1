"""The ASGI adapter: HTTP framing to and from core Requests and Responses.

It parses and bounds the body, maps methods to operations, picks the token
from the headers and writes Vault's JSON envelope. It never reads storage.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

import orjson

from mssm.core import metrics
from mssm.core.core import Core
from mssm.core.durations import parse_duration
from mssm.core.errors import APIError, BadRequest, MethodNotAllowed, PayloadTooLarge
from mssm.core.request import DELETE, LIST, PATCH, READ, UPDATE, Request, Response

logger = logging.getLogger("mssm.http")

_METHODS = {
    "GET": READ,
    "HEAD": READ,
    "LIST": LIST,
    "POST": UPDATE,
    "PUT": UPDATE,
    "DELETE": DELETE,
    "PATCH": PATCH,
}
# Request ids are unique, not secret: a random per-process prefix and a
# counter in UUID form cost far less than a system call per request.
_ID_PREFIX = secrets.token_hex(10)
_ID_PREFIX = "-".join(
    (_ID_PREFIX[:8], _ID_PREFIX[8:12], _ID_PREFIX[12:16], _ID_PREFIX[16:])
)
_ID_COUNTER = itertools.count(1)
# The id of the request being served, for log lines written while serving it.
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")


def next_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):012x}"


_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_REQUEST_COUNTERS: dict[tuple[str, str], Any] = {}
JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
MERGE_PATCH = "application/merge-patch+json"
# orjson reads 1024 levels of nesting but writes at most 254, and stored
# records and the response envelope add a few, so a deeper body could be
# parsed but never stored or answered.
MAX_JSON_DEPTH = 128


class App:
    def __init__(self, core: Core, max_request_size: int) -> None:
        self.core = core
        self.max_request_size = max_request_size

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = next_request_id()
        current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            status, headers, body = await self._serve(scope, receive, request_id)
        except APIError as exc:
            status, headers, body = _error(exc, request_id)
        except Exception:
            logger.exception(
                "internal error serving %s %r", scope["method"], scope["path"]
            )
            status, headers, body = _error(
                APIError(f"internal error, request id {request_id}"), request_id
            )
        headers.append((b"x-request-id", request_id.encode()))
        if status != 204:
            headers.append((b"content-length", str(len(body)).encode()))
        if scope["method"] == "HEAD":
            body = b""
        start = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        _request_counter(scope["method"], status).inc()
        metrics.request_seconds.observe(elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "request_id=%s method=%s path=%r status=%d duration_ms=%.2f",
                request_id,
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
            )

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(
        self, scope: dict, receive: Any, request_id: str
    ) -> tuple[int, list, bytes]:
        path = scope["path"]
        if not path.startswith("/v1/"):
            raise APIError("not found", status=404)
        req = await self._build_request(scope, receive, request_id, path[4:])
        resp = await self.core.handle(req)
        return _encode(resp, request_id)

    async def _build_request(
        self, scope: dict, receive: Any, request_id: str, path: str
    ) -> Request:
        method = scope["method"]
        operation = _METHODS.get(method)
        if operation is None:
            raise MethodNotAllowed(f"unsupported HTTP method {method}")
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        raw_query = scope.get("query_string", b"")
        query = dict(parse_qsl(raw_query.decode("latin-1"))) if raw_query else {}
        body = await self._read_body(headers, receive)
        if operation in (UPDATE, PATCH) and path.endswith("/"):
            # A key cannot end in '/': that is a folder, as Vault rules it.
            raise BadRequest("cannot write to a path ending in '/'")
        if operation == PATCH:
            _check_patch_content_type(headers)
        data = _parse_body(body) if body else {}
        if operation == READ and query.get("list", "").lower() == "true":
            operation = LIST
        if operation in (READ, LIST):
            data = {k: v for k, v in query.items() if k != "list"} | data
        if operation == LIST and not path.endswith("/"):
            path += "/"
        client = scope.get("client") or ("", 0)
        return Request(
            operation=operation,
            path=path,
            data=data,
            request_id=request_id,
            client_token=_token(headers),
            remote_addr=client[0],
            headers=headers,
            query=query,
            wrap_ttl=_wrap_ttl(headers),
        )

    async def _read_body(self, headers: dict[str, str], receive: Any) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_request_size:
            raise PayloadTooLarge("http: request body too large")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_size:
                raise PayloadTooLarge("http: request body too large")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _request_counter(method: str, status: int) -> Any:
    # labels() takes a lock and builds a key on every call; the children
    # it returns are fixed, so each is looked up once.
    key = (method, _STATUS_CLASS[status // 100])
    counter = _REQUEST_COUNTERS.get(key)
    if counter is None:
        counter = _REQUEST_COUNTERS[key] = metrics.requests_total.labels(*key)
    return counter


def _check_patch_content_type(headers: dict[str, str]) -> None:
    # Vault accepts only JSON merge patches (RFC 7386) on PATCH, so that a
    # client cannot send a full document by mistake: no Content-Type is a 400,
    # any other type a 415.
    provided = headers.get("content-type", "")
    if not provided.strip():
        raise BadRequest(f"missing Content-Type: PATCH requires {MERGE_PATCH}")
    if provided.split(";", 1)[0].strip().lower() != MERGE_PATCH:
        raise APIError(
            f"PATCH requires Content-Type of {MERGE_PATCH}, provided {provided}",
            status=415,
        )


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"failed to parse JSON input: {exc}") from None
    if data is None:
        # A JSON null body means no fields, as an empty body does.
        return {}
    if not isinstance(data, dict):
        raise BadRequest("failed to parse JSON input: the body must be a JSON object")
    _check_depth(data)
    return data


def _check_depth(data: dict[str, Any]) -> None:
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(
                "failed to parse JSON input: objects and arrays are nested more "
                f"than {MAX_JSON_DEPTH} levels deep"
            )
        children = value.values() if isinstance(value, dict) else value
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _token(headers: dict[str, str]) -> str | None:
    token = headers.get("x-vault-token")
    if token:
        return token
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def _wrap_ttl(headers: dict[str, str]) -> int | None:
    raw = headers.get("x-vault-wrap-ttl")
    if raw is None:
        return None
    seconds = parse_duration(raw, "X-Vault-Wrap-TTL")
    if seconds <= 0:
        raise BadRequest("invalid X-Vault-Wrap-TTL: must be a positive duration")
    return seconds


def _encode(resp: Response, request_id: str) -> tuple[int, list, bytes]:
    if resp.raw_body is not None:
        headers = [(b"content-type", resp.content_type.encode())]
        headers += [(k.encode(), v.encode()) for k, v in resp.headers.items()]
        return resp.status or 200, headers, resp.raw_body
    if resp.empty:
        return resp.status or 204, [], b""
    return resp.status or 200, _headers(resp), orjson.dumps(envelope(resp, request_id))


def envelope(resp: Response, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "lease_id": resp.lease_id,
        "renewable": resp.renewable,
        "lease_duration": resp.lease_duration,
        "data": resp.data,
        "wrap_info": resp.wrap_info,
        "warnings": resp.warnings or None,
        "auth": resp.auth,
    }
    if resp.top_level and resp.data:
        body = resp.data | body
    return body


def _headers(resp: Response) -> list:
    if not resp.headers:
        return list(JSON_HEADERS)
    return JSON_HEADERS + [(k.encode(), v.encode()) for k, v in resp.headers.items()]


def _error(exc: APIError, request_id: str) -> tuple[int, list, bytes]:
    # An error that carries data (a deleted KV version's metadata) or warnings
    # (a KV v1 path on a v2 mount) keeps the envelope, as Vault sends it.
    if exc.data is not None or exc.warnings:
        resp = Response(data=exc.data, warnings=exc.warnings, status=exc.status)
        body = envelope(resp, request_id)
        if exc.messages:
            body["errors"] = exc.messages
        return exc.status, list(JSON_HEADERS), orjson.dumps(body)
    body = {"errors": exc.messages}
    return exc.status, list(JSON_HEADERS), orjson.dumps(body)
