"""sys/audit lists, enables and disables audit devices. sys/audit-hash
returns the HMAC of an input, and sys/audit/checkpoint the public key and
latest signed checkpoints that `mssm audit verify` checks a log against."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.barrier import StorageView
from mssm.core.errors import BadRequest
from mssm.core.fields import BOOL, MAP, STRING, Field
from mssm.core.request import DELETE, READ, UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

ENABLE_FIELDS = {
    "type": Field(STRING),
    "description": Field(STRING),
    "options": Field(MAP),
    "local": Field(BOOL),
}


class AuditSection:
    def __init__(self, core: Core) -> None:
        self.core = core
        core.audit.declare(core.config.audit, core.config.audit_api)

    def routes(self) -> list[Route]:
        return [
            Route("audit", {READ: self.list_devices}),
            Route("audit/checkpoint", {READ: self.checkpoint}),
            Route(
                "audit/(?P<path>.+)",
                {UPDATE: self.enable, DELETE: self.disable},
                ENABLE_FIELDS,
            ),
            Route(
                "audit-hash/(?P<path>.+)",
                {UPDATE: self.audit_hash},
                {"input": Field(STRING)},
            ),
        ]

    async def setup(self) -> None:
        await self.core.audit.start(StorageView(self.core.barrier, "sys/audit/"))

    async def teardown(self) -> None:
        await self.core.audit.stop()

    async def list_devices(self, req: Request, data: dict) -> Response:
        return Response(data=self.core.audit.describe(), top_level=True)

    async def checkpoint(self, req: Request, data: dict) -> Response:
        return Response(data=await self.core.audit.checkpoints(), top_level=True)

    async def enable(self, req: Request, data: dict) -> None:
        if not data.get("type"):
            raise BadRequest("field 'type' is required: the audit device type, file")
        await self.core.audit.enable(
            data["path"],
            data["type"],
            data.get("description", ""),
            data.get("options") or {},
        )

    async def disable(self, req: Request, data: dict) -> None:
        await self.core.audit.disable(data["path"])

    async def audit_hash(self, req: Request, data: dict) -> Response:
        if "input" not in data:
            raise BadRequest("missing required field 'input'")
        digest = self.core.audit.hash(data["path"], data["input"])
        return Response(data={"hash": digest}, top_level=True)
