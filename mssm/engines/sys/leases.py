"""sys/leases: look up, list, renew, revoke and tidy leases.

The paths from before Vault moved them under sys/leases/ (sys/renew,
sys/revoke, sys/revoke-prefix, sys/revoke-force) are served as aliases,
because older clients still call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest, NotFound
from mssm.core.fields import ANY, BOOL, DURATION, STRING, Field
from mssm.core.lease_record import IRREVOCABLE
from mssm.core.request import LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

LEASE_FIELDS = {"lease_id": Field(STRING), "url_lease_id": Field(STRING)}
RENEW_FIELDS = LEASE_FIELDS | {"increment": Field(DURATION)}
REVOKE_FIELDS = LEASE_FIELDS | {"sync": Field(BOOL, default=True)}
PREFIX_FIELDS = {"prefix": Field(STRING), "sync": Field(BOOL, default=True)}
COUNT_FIELDS = {"type": Field(STRING), "include_child_namespaces": Field(BOOL)}
LISTING_FIELDS = COUNT_FIELDS | {"limit": Field(ANY)}
DEFAULT_LISTING_LIMIT = 10000
TIDY_WARNING = (
    "Tidy operation successfully started; it runs in the background. Any "
    "information from the operation will be printed to the server's log."
)


class LeasesSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        routes = [
            Route("leases/lookup", {UPDATE: self.lookup}, LEASE_FIELDS),
            Route("leases/lookup/(?P<prefix>.*)", {LIST: self.list_prefix}),
            Route("leases/count", {READ: self.count}, COUNT_FIELDS),
            Route("leases/tidy", {UPDATE: self.tidy}),
            Route("leases", {READ: self.listing}, LISTING_FIELDS),
        ]
        # Each operation under its current path and its older alias.
        for base in ("leases/", ""):
            routes += [
                Route(f"{base}renew", {UPDATE: self.renew}, RENEW_FIELDS),
                Route(
                    f"{base}renew/(?P<url_lease_id>.+)",
                    {UPDATE: self.renew},
                    RENEW_FIELDS,
                ),
                Route(f"{base}revoke", {UPDATE: self.revoke}, REVOKE_FIELDS),
                Route(
                    f"{base}revoke/(?P<url_lease_id>.+)",
                    {UPDATE: self.revoke},
                    REVOKE_FIELDS,
                ),
                Route(
                    f"{base}revoke-prefix/(?P<prefix>.+)",
                    {UPDATE: self.revoke_prefix},
                    PREFIX_FIELDS,
                ),
                Route(
                    f"{base}revoke-force/(?P<prefix>.+)",
                    {UPDATE: self.revoke_force},
                    PREFIX_FIELDS,
                ),
            ]
        return routes

    async def lookup(self, req: Request, data: dict) -> Response:
        lease_id = _lease_id(data)
        return Response(data=self.core.leases.describe(lease_id))

    async def list_prefix(self, req: Request, data: dict) -> Response:
        keys = await self.core.leases.list_prefix(data.get("prefix", ""))
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def renew(self, req: Request, data: dict) -> Response:
        lease_id = _lease_id(data)
        return await self.core.leases.renew(lease_id, data.get("increment", 0))

    async def revoke(self, req: Request, data: dict) -> Response | None:
        lease_id = _lease_id(data)
        if not data.get("sync", True):
            self.core.leases.revoke_in_background(lease_id)
            return Response(status=202)
        await self.core.leases.revoke(lease_id)
        return None

    async def revoke_prefix(self, req: Request, data: dict) -> Response | None:
        revoked = await self.core.leases.revoke_prefix(data["prefix"])
        return _nothing_matched(revoked, data["prefix"])

    async def revoke_force(self, req: Request, data: dict) -> Response | None:
        revoked = await self.core.leases.revoke_prefix(data["prefix"], force=True)
        return _nothing_matched(revoked, data["prefix"])

    async def tidy(self, req: Request, data: dict) -> Response:
        self.core.leases.tidy_in_background()
        return Response(status=202, warnings=[TIDY_WARNING])

    async def count(self, req: Request, data: dict) -> Response:
        state = _listing_state(data)
        return Response(data=self.core.leases.count(state))

    async def listing(self, req: Request, data: dict) -> Response:
        state = _listing_state(data)
        limit = _limit(data.get("limit"))
        return Response(data=self.core.leases.listing(state, limit))


def _lease_id(data: dict[str, Any]) -> str:
    lease_id = data.get("lease_id") or data.get("url_lease_id") or ""
    if not lease_id:
        raise BadRequest("lease_id must be specified")
    return lease_id


def _nothing_matched(revoked: int, prefix: str) -> Response | None:
    if revoked:
        return None
    return Response(warnings=[f"no leases matched the prefix {prefix!r}"])


def _listing_state(data: dict[str, Any]) -> str | None:
    # Vault accepts only type=irrevocable here. MSSM also accepts no type,
    # and then counts or lists every lease.
    kind = data.get("type", "")
    if kind == "":
        return None
    if kind != IRREVOCABLE:
        raise BadRequest(
            f'invalid type {kind!r}: expected "irrevocable", or no type for every lease'
        )
    return IRREVOCABLE


def _limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_LISTING_LIMIT
    if isinstance(value, str) and value.lower() == "none":
        return 0
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise BadRequest(
            f'invalid limit {value!r}: expected a positive integer or "none"'
        ) from None
    if limit <= 0:
        raise BadRequest(
            f'invalid limit {value!r}: expected a positive integer or "none"'
        )
    return limit
