"""The database secrets engine: dynamic and static database credentials.

Paths and field names follow Vault's database secrets engine, so hvac's
`secrets.database` client works unchanged. Plugins: PostgreSQL
(postgresql-database-plugin) and MySQL/MariaDB (mysql-database-plugin and
the 16-character legacy variants).
"""

from __future__ import annotations

from typing import Any

from mssm.engines.base import Engine, EngineContext
from mssm.engines.database.config import Connections
from mssm.engines.database.creds import Credentials
from mssm.engines.database.roles import Roles
from mssm.engines.database.static_roles import StaticRoles


class DatabaseEngine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.connections = Connections(self)
        self.roles = Roles(self)
        self.credentials = Credentials(self)
        self.static_roles = StaticRoles(self)
        self.routes = [
            *self.connections.routes(),
            *self.roles.routes(),
            *self.credentials.routes(),
            *self.static_roles.routes(),
        ]

    async def setup(self) -> None:
        await self.static_roles.start()

    async def teardown(self) -> None:
        await self.static_roles.stop()
        await self.connections.close_all()

    async def revoke_secret(self, internal: dict[str, Any]) -> None:
        await self.credentials.revoke(internal)

    async def renew_secret(self, internal: dict[str, Any], ttl: int) -> None:
        await self.credentials.renew(internal, ttl)


__all__ = ["DatabaseEngine"]
