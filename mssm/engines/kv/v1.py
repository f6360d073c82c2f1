"""KV version 1: one unversioned JSON object per path."""

from __future__ import annotations

from mssm.core.errors import NotFound
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Engine, EngineContext, Route

# The operations that read and change nothing.
READS = frozenset({READ, LIST})


class KVv1Engine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.routes = [
            Route(
                "(?P<path>.*)",
                {
                    READ: self.read,
                    CREATE: self.write,
                    UPDATE: self.write,
                    DELETE: self.delete,
                    LIST: self.list,
                },
                existence=self.exists,
                free_form=True,
                effect_free=READS,
            )
        ]

    async def exists(self, req: Request) -> bool:
        return await self.ctx.storage.get(req.relative_path) is not None

    async def read(self, req: Request, data: dict) -> Response:
        stored = await self.ctx.storage.get_json(req.relative_path)
        if stored is None:
            raise NotFound()
        ttl = self.ctx.mount.default_lease_ttl or self.ctx.core.config.default_lease_ttl
        return Response(data=stored, lease_duration=ttl)

    async def write(self, req: Request, data: dict) -> None:
        if not req.relative_path or req.relative_path.endswith("/"):
            raise NotFound("a key name is required; the path ends with '/'")
        await self.ctx.storage.put_json(req.relative_path, req.data)

    async def delete(self, req: Request, data: dict) -> None:
        await self.ctx.storage.delete(req.relative_path)

    async def list(self, req: Request, data: dict) -> Response:
        keys = await self.ctx.storage.list(req.relative_path)
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})
