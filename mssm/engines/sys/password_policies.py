"""sys/policies/password: named password policies and sample passwords."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.barrier import StorageView
from mssm.core.errors import BadRequest, NotFound
from mssm.core.fields import STRING, Field
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.database.passwords import (
    POLICY_STORAGE_PREFIX,
    PolicyError,
    decode_policy_text,
    parse_policy,
)

if TYPE_CHECKING:
    from mssm.core.core import Core

NAME = r"(?P<name>[^/]+)"


class PasswordPoliciesSection:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.storage = StorageView(core.barrier, POLICY_STORAGE_PREFIX)

    def routes(self) -> list[Route]:
        return [
            Route("policies/password/?", {LIST: self.list_policies}),
            Route(f"policies/password/{NAME}/generate", {READ: self.generate}),
            Route(
                f"policies/password/{NAME}",
                {
                    READ: self.read_policy,
                    CREATE: self.write_policy,
                    UPDATE: self.write_policy,
                    DELETE: self.delete_policy,
                },
                {"policy": Field(STRING)},
            ),
        ]

    async def list_policies(self, req: Request, data: dict) -> Response:
        keys = await self.storage.list()
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def read_policy(self, req: Request, data: dict) -> Response:
        record = await self._record(data["name"])
        return Response(data={"policy": record["policy"]})

    async def write_policy(self, req: Request, data: dict) -> None:
        text = data.get("policy", "")
        if not text:
            raise BadRequest("missing policy: field 'policy' must hold the HCL text")
        try:
            parse_policy(text)
        except PolicyError as exc:
            raise BadRequest(str(exc)) from None
        await self.storage.put_json(data["name"], {"policy": decode_policy_text(text)})

    async def delete_policy(self, req: Request, data: dict) -> None:
        await self.storage.delete(data["name"])

    async def generate(self, req: Request, data: dict) -> Response:
        record = await self._record(data["name"])
        password = parse_policy(record["policy"]).generate()
        return Response(data={"password": password})

    async def _record(self, name: str) -> dict:
        record = await self.storage.get_json(name)
        if record is None:
            raise NotFound(f"password policy {name!r} does not exist")
        return record
