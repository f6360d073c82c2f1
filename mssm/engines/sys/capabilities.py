"""sys/capabilities, sys/capabilities-self and sys/capabilities-accessor:
what a token may do on given paths, as its policies decide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.errors import BadRequest
from mssm.core.fields import STRING, STRING_LIST, Field
from mssm.core.request import UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

PATH_FIELDS = {"path": Field(STRING_LIST), "paths": Field(STRING_LIST)}


class CapabilitiesSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route(
                "capabilities",
                {UPDATE: self.for_token},
                PATH_FIELDS | {"token": Field(STRING)},
            ),
            Route(
                "capabilities-self",
                {UPDATE: self.for_self},
                PATH_FIELDS | {"token": Field(STRING)},
            ),
            Route(
                "capabilities-accessor",
                {UPDATE: self.for_accessor},
                PATH_FIELDS | {"accessor": Field(STRING)},
            ),
        ]

    async def for_token(self, req: Request, data: dict) -> Response:
        paths = _paths(data)
        entry = await self.core.tokens.lookup(data.get("token", ""), self.core.clock())
        if entry is None:
            raise BadRequest("invalid token")
        return self._answer(entry.policies, paths)

    async def for_self(self, req: Request, data: dict) -> Response:
        return self._answer(req.token.policies, _paths(data))

    async def for_accessor(self, req: Request, data: dict) -> Response:
        paths = _paths(data)
        entry = await self.core.tokens.lookup_accessor(
            data.get("accessor", ""), self.core.clock()
        )
        if entry is None:
            raise BadRequest("invalid accessor")
        return self._answer(entry.policies, paths)

    def _answer(self, policies: list[str], paths: list[str]) -> Response:
        answer = {
            path: self.core.policies.capabilities(policies, path) for path in paths
        }
        if len(paths) == 1:
            answer["capabilities"] = answer[paths[0]]
        return Response(data=answer, top_level=True)


def _paths(data: dict) -> list[str]:
    paths = list(data.get("paths", [])) + list(data.get("path", []))
    cleaned = [path.lstrip("/") for path in paths if path]
    if not cleaned:
        raise BadRequest("paths must be supplied")
    return list(dict.fromkeys(cleaned))
