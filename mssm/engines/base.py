"""The secrets engine contract.

An engine is mounted at a path. It declares routes: a regular expression over
the path relative to the mount, the fields its body accepts, and one handler
per operation. The core has already authenticated and authorised the request
when a handler runs. Handlers take the request and the parsed fields and
return a Response, a dict (sent as `data`), or None (a 204).

Engines store data only through `ctx.storage`, a barrier view private to the
mount; unmounting deletes it. Engines that hand out dynamic secrets return a
SecretLease in the Response and implement `revoke_secret` and
`renew_secret`, which the lease manager calls later.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mssm.core.errors import APIError, MethodNotAllowed
from mssm.core.fields import Field, parse_fields
from mssm.core.request import CREATE, UPDATE, Request, Response

if TYPE_CHECKING:
    from mssm.core.barrier import StorageView
    from mssm.core.core import Core
    from mssm.core.mounts import MountEntry

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response | dict | None]]
ExistenceCheck = Callable[[Request], Awaitable[bool]]


@dataclass
class Route:
    pattern: str
    handlers: dict[str, Handler]
    fields: dict[str, Field] = field(default_factory=dict)
    existence: ExistenceCheck | None = None
    # Path patterns the request may reach without a token (JWKS, for example).
    unauthenticated: bool = False
    # The body is free-form (KV v1 values): no schema, no unknown-field warnings.
    free_form: bool = False
    # The operations whose handlers change nothing: their request's audit
    # line may wait for the response's and share its write.
    effect_free: frozenset[str] = frozenset()
    compiled: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.compiled = re.compile(self.pattern)


@dataclass
class EngineContext:
    core: Core
    mount: MountEntry
    storage: StorageView


class Engine:
    """Base class for secrets engines; subclasses set `routes` in __init__."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.routes: list[Route] = []

    async def setup(self) -> None:
        """Run once after the mount is created or loaded at unseal."""

    async def teardown(self) -> None:
        """Release pools and tasks; called at seal and before unmount."""

    async def revoke_secret(self, internal: dict[str, Any]) -> None:
        """Revoke a dynamic secret created by this engine."""
        raise APIError("this engine does not issue leases", status=400)

    async def renew_secret(self, internal: dict[str, Any], ttl: int) -> None:
        """Extend a dynamic secret's life on the backing system."""

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.compiled.fullmatch(path)
            if found:
                params = {k: v for k, v in found.groupdict().items() if v is not None}
                return route, params
        return None

    async def resolve_operation(self, req: Request, route: Route) -> str:
        """Turn a write into create or update, by whether the target exists."""
        if req.operation not in (CREATE, UPDATE):
            return req.operation
        if route.existence is None:
            return UPDATE if UPDATE in route.handlers else CREATE
        return UPDATE if await route.existence(req) else CREATE

    async def handle(self, req: Request, route: Route) -> Response:
        handler = route.handlers.get(req.operation)
        if handler is None and req.operation == CREATE:
            handler = route.handlers.get(UPDATE)
        if handler is None and req.operation == UPDATE:
            handler = route.handlers.get(CREATE)
        if handler is None:
            raise MethodNotAllowed("unsupported operation")
        if route.free_form:
            values, warnings = dict(req.data), []
        else:
            values, warnings = parse_fields(route.fields, req.data, req.params)
        values.update(req.params)
        result = await handler(req, values)
        response = _as_response(result)
        response.warnings = warnings + response.warnings
        return response


def _as_response(result: Response | dict | None) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response()
    return Response(data=result)
