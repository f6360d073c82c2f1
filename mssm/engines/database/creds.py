"""database/creds/:role: dynamic users, and their renewal and revocation.

The order of a creds request protects against orphans: the lease is
reserved (stored) first, then the user is created in one transaction. If
the creation fails and was rolled back, the reservation is cancelled. If it
is unclear what was left behind, the reservation is revoked like any lease,
because revoking a user that does not exist succeeds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mssm.core.errors import APIError, BadRequest
from mssm.core.request import READ, Request, Response, SecretLease
from mssm.engines.base import Route
from mssm.engines.database.config import NAME, ConnectionConfig
from mssm.engines.database.plugin import (
    CreateUserError,
    Database,
    DatabaseError,
    NewUser,
)
from mssm.engines.database.roles import Role
from mssm.engines.database.templates import (
    TemplateError,
    UsernameTemplate,
    check_username,
)

if TYPE_CHECKING:
    from mssm.engines.database import DatabaseEngine

logger = logging.getLogger(__name__)


def format_expiration(timestamp: float) -> str:
    """Format a Unix time as the {{expiration}} value: "2026-01-02 15:04:05+0000"."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S+0000")


class Credentials:
    def __init__(self, engine: DatabaseEngine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        return [Route(f"creds/{NAME}", {READ: self.read_creds})]

    async def read_creds(self, req: Request, data: dict) -> Response:
        role = await self.engine.roles.load(data["name"])
        if role is None:
            raise BadRequest(f"unknown role: {data['name']}")
        config, database = await self._connection(role)
        username = self._username(req, role, config, database)
        password = await self.engine.connections.generate_password(config)
        details = database.user_details(role.creation_statements, username)
        internal = _internal(role, username, details)
        leases = self.engine.ctx.core.leases
        lease = await leases.reserve(req, role.default_ttl, role.max_ttl, internal)
        user = NewUser(
            username=username,
            password=password,
            expiration=format_expiration(lease.expire_time),
            statements=role.creation_statements,
            rollback_statements=role.rollback_statements,
        )
        await self._create(database, user, lease.lease_id)
        return Response(
            data={"username": username, "password": password},
            secret=SecretLease(
                ttl=role.default_ttl, max_ttl=role.max_ttl, internal=internal
            ),
            lease_id=lease.lease_id,
        )

    async def _connection(self, role: Role) -> tuple[ConnectionConfig, Database]:
        try:
            config, database = await self.engine.connections.database(role.db_name)
        except DatabaseError as exc:
            raise APIError(str(exc)) from None
        if not config.allows(role.name):
            raise APIError(f"{role.name!r} is not an allowed role")
        return config, database

    def _username(
        self, req: Request, role: Role, config: ConnectionConfig, database: Database
    ) -> str:
        source = config.username_template or database.default_username_template
        display_name = getattr(req.token, "display_name", "") or "token"
        try:
            username = UsernameTemplate(source).render(display_name, role.name)
            check_username(username, database.max_username_length, config.plugin_name)
        except TemplateError as exc:
            raise BadRequest(f"invalid username_template: {exc}") from None
        return username

    async def _create(self, database: Database, user: NewUser, lease_id: str) -> None:
        leases = self.engine.ctx.core.leases
        try:
            await database.create_user(user)
        except CreateUserError as exc:
            if exc.rolled_back:
                await leases.cancel(lease_id)
            else:
                await leases.abandon(lease_id, f"creation failed: {exc}")
            logger.warning("creating database user %s failed: %s", user.username, exc)
            raise APIError(f"failed to create the database user: {exc}") from None
        except BaseException:
            # Cancelled or crashed mid-creation: the user may exist.
            await leases.abandon(lease_id, "creation was interrupted")
            raise

    # -- lease callbacks -----------------------------------------------------------

    async def revoke(self, internal: dict[str, Any]) -> None:
        _, database = await self.engine.connections.database(internal["db_name"])
        statements = await self._statements(internal, "revocation_statements")
        await database.revoke_user(internal["username"], statements, internal)

    async def renew(self, internal: dict[str, Any], ttl: int) -> None:
        _, database = await self.engine.connections.database(internal["db_name"])
        statements = await self._statements(internal, "renew_statements")
        expiration = format_expiration(self.engine.ctx.core.clock() + ttl)
        await database.renew_user(internal["username"], statements, expiration)

    async def _statements(self, internal: dict[str, Any], kind: str) -> list[str]:
        """Use the role's current statements, or the ones saved with the lease
        once the role is gone or points at another connection."""
        role = await self.engine.roles.load(internal.get("role", ""))
        if role is not None and role.db_name == internal["db_name"]:
            return getattr(role, kind)
        return list(internal.get(kind) or [])


def _internal(role: Role, username: str, details: dict) -> dict[str, Any]:
    return {
        "username": username,
        "db_name": role.db_name,
        "role": role.name,
        "revocation_statements": role.revocation_statements,
        "renew_statements": role.renew_statements,
        **details,
    }
