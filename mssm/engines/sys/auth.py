"""sys/auth: the auth methods. MSSM has one, the token store at auth/token/,
whose default and max TTL are tuned at sys/auth/token/tune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssm import __version__
from mssm.core.durations import parse_duration
from mssm.core.errors import BadRequest
from mssm.core.fields import ANY, STRING, Field
from mssm.core.request import DELETE, READ, UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

TUNE_FIELDS = {
    "default_lease_ttl": Field(ANY),
    "max_lease_ttl": Field(ANY),
    "description": Field(STRING),
}
DESCRIPTION = "token based credentials"


class AuthSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("auth", {READ: self.list_methods}),
            Route(
                "auth/token/tune",
                {READ: self.read_tune, UPDATE: self.tune},
                TUNE_FIELDS,
            ),
            Route(
                "auth/(?P<path>.+)",
                {UPDATE: self.unsupported, DELETE: self.unsupported},
                {"type": Field(STRING)},
            ),
        ]

    async def list_methods(self, req: Request, data: dict) -> Response:
        return Response(data={"token/": self._token_method()}, top_level=True)

    def _token_method(self) -> dict[str, Any]:
        limits = self.core.tokens.tune_values()
        mount = self.core.internal_engines["auth/token/"].ctx.mount
        return {
            "accessor": mount.accessor,
            "config": limits
            | {"force_no_cache": False, "token_type": "default-service"},
            "description": DESCRIPTION,
            "external_entropy_access": False,
            "local": False,
            "options": None,
            "plugin_version": "",
            "running_plugin_version": f"v{__version__}+builtin.mssm",
            "running_sha256": "",
            "seal_wrap": False,
            "type": "token",
            "uuid": mount.uuid,
        }

    async def read_tune(self, req: Request, data: dict) -> Response:
        tune = self.core.tokens.tune_values() | {
            "description": DESCRIPTION,
            "force_no_cache": False,
            "token_type": "default-service",
        }
        return Response(data=tune, top_level=True)

    async def tune(self, req: Request, data: dict) -> None:
        await self.core.tokens.set_tune(
            _ttl(data, "default_lease_ttl"), _ttl(data, "max_lease_ttl")
        )

    async def unsupported(self, req: Request, data: dict) -> None:
        raise BadRequest(
            "MSSM has one auth method, the token store at auth/token/; other "
            "auth methods cannot be enabled, disabled or tuned"
        )


def _ttl(data: dict, name: str) -> int | None:
    if name not in data:
        return None
    value = data[name]
    if value in ("system", ""):
        return 0
    return parse_duration(value, name)
