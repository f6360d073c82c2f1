"""sys/wrapping: wrap a value, and look up, unwrap or rewrap a wrapping
token. Wrapping itself happens in the core for any response whose request
carries X-Vault-Wrap-TTL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.errors import BadRequest, PermissionDenied
from mssm.core.fields import STRING, Field
from mssm.core.request import READ, UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

TOKEN_FIELD = {"token": Field(STRING)}


class WrappingSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("wrapping/wrap", {UPDATE: self.wrap}, free_form=True),
            Route("wrapping/unwrap", {UPDATE: self.unwrap}, TOKEN_FIELD),
            Route(
                "wrapping/lookup",
                {READ: self.lookup, UPDATE: self.lookup},
                TOKEN_FIELD,
                unauthenticated=True,
            ),
            Route("wrapping/rewrap", {UPDATE: self.rewrap}, TOKEN_FIELD),
        ]

    async def setup(self) -> None:
        await self.core.wrapping.start(lambda: self.core.clock())

    async def teardown(self) -> None:
        await self.core.wrapping.stop()

    async def wrap(self, req: Request, data: dict) -> Response:
        if req.wrap_ttl is None:
            raise BadRequest(
                "endpoint requires response wrapping to be used: set the "
                "X-Vault-Wrap-TTL header"
            )
        return Response(data=dict(req.data))

    async def unwrap(self, req: Request, data: dict) -> Response:
        """Unwrap the token in the body, or else the one in the header.

        With the wrapping token in the body, a client token in the header
        must be valid, as Vault requires.
        """
        body_token = data.get("token", "")
        if body_token and req.client_token:
            await self._require_client_token(req)
        token_id = body_token or req.client_token or ""
        if not token_id:
            raise BadRequest(
                "missing wrapping token: send it in the token field or the "
                "X-Vault-Token header"
            )
        return await self.core.wrapping.unwrap(token_id, self.core.clock())

    async def _require_client_token(self, req: Request) -> None:
        entry = await self.core.tokens.lookup(req.client_token or "", self.core.clock())
        if entry is None:
            raise PermissionDenied()

    async def lookup(self, req: Request, data: dict) -> Response:
        token_id = data.get("token") or req.client_token or ""
        record = await self.core.wrapping.lookup(token_id, self.core.clock())
        return Response(data=record.lookup_data())

    async def rewrap(self, req: Request, data: dict) -> Response:
        token_id = data.get("token", "")
        if not token_id:
            raise BadRequest("missing required field 'token'")
        return await self.core.wrapping.rewrap(token_id, self.core.clock())
