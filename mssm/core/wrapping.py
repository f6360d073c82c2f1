"""Response wrapping: a response kept through the barrier under a
single-use wrapping token, so that a deployer who passes the token on never
sees the secret.

Storage layout (a view under sys/wrap/): token/<hash> holds the wrapped
response and its terms. The token id is hashed with the token store's salt
and never stored. Unwrapping marks the record consumed with a conditional
write before deleting it, so two concurrent unwraps cannot both succeed.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from mssm.core.barrier import StorageView
from mssm.core.errors import BadRequest
from mssm.core.request import Request, Response
from mssm.core.timefmt import rfc3339
from mssm.core.tokens import TokenStore, generate_accessor, generate_token_id

logger = logging.getLogger(__name__)

INVALID_TOKEN = "wrapping token is not valid or does not exist"  # noqa: S105
CONSUMED = b'{"consumed":true}'
SWEEP_SECONDS = 10.0
# Response fields a wrapping token carries, in the order they are restored.
_RESPONSE_FIELDS = (
    "data",
    "warnings",
    "auth",
    "lease_id",
    "lease_duration",
    "renewable",
    "top_level",
)


@dataclass
class WrapRecord:
    creation_time: float
    creation_path: str
    ttl: int
    accessor: str
    response: dict[str, Any]

    @property
    def expire_time(self) -> float:
        return self.creation_time + self.ttl

    def lookup_data(self) -> dict[str, Any]:
        return {
            "creation_path": self.creation_path,
            "creation_time": rfc3339(self.creation_time),
            "creation_ttl": self.ttl,
        }


class WrappingStore:
    def __init__(self, storage: StorageView, tokens: TokenStore) -> None:
        self.storage = storage
        self.tokens = tokens
        self._expiry: list[tuple[float, str]] = []
        self._task: asyncio.Task | None = None

    async def start(self, clock: Callable[[], float]) -> None:
        """Index the stored wrapping tokens and start deleting expired ones."""
        self._expiry = []
        for key in await self.storage.list("token/"):
            record = await self._load(key)
            if record is not None:
                heapq.heappush(self._expiry, (record.expire_time, key))
        if self._task is None:
            self._task = asyncio.create_task(self._sweep(clock), name="wrap-expiry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _sweep(self, clock: Callable[[], float]) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.delete_expired(clock())
            except Exception:
                logger.exception("deleting expired wrapping tokens failed; retrying")

    async def delete_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            await self.storage.delete(f"token/{key}")

    # -- wrap ------------------------------------------------------------------

    async def wrap(self, req: Request, resp: Response, now: float) -> Response:
        """Store resp under a new wrapping token, and return the wrap_info response."""
        if resp.raw_body is not None or resp.empty:
            return resp
        ttl = req.wrap_ttl or 0
        return await self.wrap_response(_response_fields(resp), req.path, ttl, now)

    async def wrap_response(
        self, fields: dict[str, Any], creation_path: str, ttl: int, now: float
    ) -> Response:
        token_id = generate_token_id()
        record = WrapRecord(now, creation_path, ttl, generate_accessor(), fields)
        key = self.tokens.hash_token(token_id)
        await self.storage.put_json(f"token/{key}", record.__dict__)
        heapq.heappush(self._expiry, (record.expire_time, key))
        wrap_info = {
            "token": token_id,
            "accessor": record.accessor,
            "ttl": ttl,
            "creation_time": rfc3339(now),
            "creation_path": creation_path,
        }
        auth = fields.get("auth")
        if auth and auth.get("accessor"):
            wrap_info["wrapped_accessor"] = auth["accessor"]
        return Response(wrap_info=wrap_info)

    # -- lookup, unwrap, rewrap ------------------------------------------------

    async def lookup(self, token_id: str, now: float) -> WrapRecord:
        key = self._key(token_id)
        record = await self._load(key)
        if record is None or record.expire_time <= now:
            raise BadRequest(INVALID_TOKEN)
        return record

    async def unwrap(self, token_id: str, now: float) -> Response:
        record = await self.consume(token_id, now)
        return _restore(record.response)

    async def rewrap(self, token_id: str, now: float) -> Response:
        record = await self.consume(token_id, now)
        return await self.wrap_response(
            record.response, record.creation_path, record.ttl, now
        )

    async def consume(self, token_id: str, now: float) -> WrapRecord:
        """Take the record of token_id once; a second call raises BadRequest."""
        key = self._key(token_id)
        raw = await self.storage.get(f"token/{key}")
        if raw is None or raw == CONSUMED:
            raise BadRequest(INVALID_TOKEN)
        record = WrapRecord(**orjson.loads(raw))
        if record.expire_time <= now:
            await self.storage.delete(f"token/{key}")
            raise BadRequest(INVALID_TOKEN)
        if not await self.storage.put_if(f"token/{key}", CONSUMED, raw):
            raise BadRequest(INVALID_TOKEN)
        await self.storage.delete(f"token/{key}")
        return record

    def _key(self, token_id: str) -> str:
        if not token_id:
            raise BadRequest(INVALID_TOKEN)
        return self.tokens.hash_token(token_id)

    async def _load(self, key: str) -> WrapRecord | None:
        raw = await self.storage.get(f"token/{key}")
        if raw is None or raw == CONSUMED:
            return None
        return WrapRecord(**orjson.loads(raw))


def _response_fields(resp: Response) -> dict[str, Any]:
    return {name: getattr(resp, name) for name in _RESPONSE_FIELDS}


def _restore(fields: dict[str, Any]) -> Response:
    known = {k: v for k, v in fields.items() if k in _RESPONSE_FIELDS}
    return Response(**known)
