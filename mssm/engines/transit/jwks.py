"""jwks/ and jwks/NAME: the public keys as a JWK Set (RFC 7517 section 5),
without a token, for verifiers to fetch.

A key's set lists every version from min_decryption_version up, a version
published ahead included. `jwks` lists the keys that set `publish`. HMAC
and symmetric keys never appear. The set may be cached for the key's
jwks_max_age, but never past the next planned change (a pending version
that starts signing, or a scheduled rotation) and, for a key with
publish_ahead, never longer than publish_ahead. A rotation may come at any
moment and its version signs publish_ahead later, so a copy cached just
before the rotation must have expired by then.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from mssm.core.errors import NotFound
from mssm.core.request import READ, Request, Response
from mssm.engines.base import Route
from mssm.engines.transit import jose
from mssm.engines.transit.keys import KEY_NAME_PATTERN, KeyPolicy

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine


class JWKSPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route("jwks", {READ: self.read_all}, unauthenticated=True),
            Route(
                f"jwks/(?P<name>{KEY_NAME_PATTERN})",
                {READ: self.read_key},
                unauthenticated=True,
            ),
        ]

    async def read_key(self, req: Request, data: dict) -> Response:
        policy = await self.store.get(data["name"])
        if policy is None or not policy.type.asymmetric:
            # The same answer for a missing key and an unpublishable one.
            raise NotFound(f"no JWKS for key {data['name']!r}")
        return _jwks_response([policy], self.engine.now())

    async def read_all(self, req: Request, data: dict) -> Response:
        published = []
        for name in await self.store.names():
            policy = await self.store.get(name)
            if policy is not None and policy.publish and policy.type.asymmetric:
                published.append(policy)
        return _jwks_response(published, self.engine.now())


def _jwks_response(policies: list[KeyPolicy], now: float) -> Response:
    keys: list[dict[str, Any]] = []
    for policy in policies:
        keys += [jose.jwks_entry(policy, v) for v in policy.readable_versions()]
    body = orjson.dumps({"keys": keys})
    max_age = min((_max_age(p, now) for p in policies), default=0)
    return Response(
        raw_body=body,
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


def _max_age(policy: KeyPolicy, now: float) -> int:
    ceiling = policy.jwks_max_age
    if policy.publish_ahead:
        ceiling = min(ceiling, policy.publish_ahead)
    change = policy.next_key_change(now)
    if change is None:
        return ceiling
    # Round down so that a cached copy expires before the change, not after.
    until_change = max(0, math.floor(change - now))
    return min(ceiling, until_change)
