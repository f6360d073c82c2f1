"""database/config/:name, reset/:name and rotate-root/:name: connections.

Each connection has one pool, opened on first use and closed when the
connection's configuration changes, on reset, on rotate-root and when the
mount is torn down.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mssm.core.errors import APIError, BadRequest, NotFound
from mssm.core.fields import ANY, BOOL, COMMA_LIST, DURATION, INT, STRING, Field
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.database import mysql, postgresql
from mssm.engines.database.passwords import DEFAULT_POLICY, PasswordPolicy, load_policy
from mssm.engines.database.plugin import (
    Database,
    DatabaseError,
    PoolLimits,
    check_password_safe,
    redact_url,
)
from mssm.engines.database.templates import TemplateError, UsernameTemplate

if TYPE_CHECKING:
    from mssm.engines.database import DatabaseEngine

logger = logging.getLogger(__name__)

NAME = r"(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
PLUGINS = (postgresql.PLUGIN_NAME, mysql.PLUGIN_NAME, *mysql.LEGACY_PLUGIN_NAMES)
DEFAULT_MAX_OPEN_CONNECTIONS = 4
# A signed 32-bit bound: far above what any database server accepts, and
# small enough to store and serialise.
MAX_OPEN_CONNECTIONS = 2**31 - 1
CONFIG_FIELDS = {
    "plugin_name": Field(STRING),
    "plugin_version": Field(STRING),
    "connection_url": Field(STRING),
    "username": Field(STRING),
    "password": Field(STRING),
    "allowed_roles": Field(COMMA_LIST),
    "verify_connection": Field(BOOL),
    "max_open_connections": Field(INT),
    "max_idle_connections": Field(INT),
    "max_connection_lifetime": Field(DURATION),
    "password_policy": Field(STRING),
    "username_template": Field(STRING),
    "root_rotation_statements": Field(ANY),
    "tls_ca": Field(STRING),
    "tls_certificate_key": Field(STRING),
    "tls_skip_verify": Field(BOOL),
}


@dataclass
class ConnectionConfig:
    name: str
    plugin_name: str
    connection_url: str = ""
    username: str = ""
    password: str = ""
    # A root password being rotated in: stored before the database changes,
    # so that it is never known to the database alone.
    pending_password: str = ""
    allowed_roles: list[str] = field(default_factory=list)
    verify_connection: bool = True
    max_open_connections: int = DEFAULT_MAX_OPEN_CONNECTIONS
    # NOTE: accepted and stored for compatibility; the pools close idle
    # connections on their own schedule and do not use this count.
    max_idle_connections: int = 0
    max_connection_lifetime: int = 0
    password_policy: str = ""
    username_template: str = ""
    root_rotation_statements: list[str] = field(default_factory=list)
    tls_ca: str = ""
    tls_certificate_key: str = ""
    tls_skip_verify: bool = False
    plugin_version: str = ""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ConnectionConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def allows(self, role: str) -> bool:
        return any(_glob_match(pattern, role) for pattern in self.allowed_roles)

    def public(self) -> dict[str, Any]:
        """Return the read response data, without password or private key."""
        details: dict[str, Any] = {
            "connection_url": redact_url(self.connection_url),
            "username": self.username,
        }
        if self.max_open_connections != DEFAULT_MAX_OPEN_CONNECTIONS:
            details["max_open_connections"] = self.max_open_connections
        if self.username_template:
            details["username_template"] = self.username_template
        if self.tls_ca:
            details["tls_ca"] = self.tls_ca
        return {
            "allowed_roles": self.allowed_roles,
            "connection_details": details,
            "password_policy": self.password_policy,
            "plugin_name": self.plugin_name,
            "plugin_version": self.plugin_version,
            "root_credentials_rotate_statements": self.root_rotation_statements,
            "verify_connection": self.verify_connection,
        }


def statement_list(name: str, value: Any) -> list[str]:
    """Accept statements as a list of strings or as one string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item for item in value if item.strip()]
    raise BadRequest(f"field {name!r} must be a list of SQL statements (strings)")


def build_database(config: ConnectionConfig, password: str | None = None) -> Database:
    """Create the plugin object for config; DatabaseError if the URL is invalid."""
    secret = config.password if password is None else password
    limits = PoolLimits(config.max_open_connections, config.max_connection_lifetime)
    if config.plugin_name == postgresql.PLUGIN_NAME:
        conninfo = postgresql.build_conninfo(
            config.connection_url, config.username, secret
        )
        return postgresql.PostgreSQLDatabase(conninfo, limits)
    options = mysql.parse_dsn(config.connection_url, config.username, secret)
    tls = mysql.TLSOptions(
        mode=options["_params"].get("tls", ""),
        ca_pem=config.tls_ca,
        certificate_key_pem=config.tls_certificate_key,
        skip_verify=config.tls_skip_verify,
    )
    context = mysql.tls_context(tls)
    if context is not None:
        options["ssl"] = context
    legacy = config.plugin_name in mysql.LEGACY_PLUGIN_NAMES
    return mysql.MySQLDatabase(options, limits, legacy)


class Connections:
    """Connection configurations and their open pools."""

    def __init__(self, engine: DatabaseEngine) -> None:
        self.engine = engine
        self.storage = engine.ctx.storage
        self._open: dict[str, Database] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Held while a connection's stored configuration is read, changed
        # and written back, so that a rotated root password is never
        # overwritten by a write that read the old one.
        self._write_locks: dict[str, asyncio.Lock] = {}

    def routes(self) -> list[Route]:
        return [
            Route("config/?", {LIST: self.list_configs}),
            Route(
                f"config/{NAME}",
                {
                    READ: self.read_config,
                    CREATE: self.write_config,
                    UPDATE: self.write_config,
                    DELETE: self.delete_config,
                },
                CONFIG_FIELDS,
            ),
            Route(f"reset/{NAME}", {UPDATE: self.reset}),
            Route(f"rotate-root/{NAME}", {UPDATE: self.rotate_root}),
        ]

    # -- storage and pools -------------------------------------------------------

    async def load(self, name: str) -> ConnectionConfig | None:
        record = await self.storage.get_json(f"config/{name}")
        return None if record is None else ConnectionConfig.from_record(record)

    async def save(self, config: ConnectionConfig) -> None:
        await self.storage.put_json(f"config/{config.name}", asdict(config))

    async def database(self, name: str) -> tuple[ConnectionConfig, Database]:
        """Return the configuration and the open plugin for connection name."""
        config = await self.load(name)
        if config is None:
            raise DatabaseError(f"no database connection named {name!r}")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            database = self._open.get(name)
            if database is None:
                if config.pending_password:
                    config = await self._settle_pending(config)
                database = build_database(config)
                self._open[name] = database
        return config, database

    async def close(self, name: str) -> None:
        database = self._open.pop(name, None)
        if database is not None:
            await _close_quietly(name, database)

    async def close_all(self) -> None:
        for name in list(self._open):
            await self.close(name)

    async def password_policy(self, config: ConnectionConfig) -> PasswordPolicy:
        if not config.password_policy:
            return DEFAULT_POLICY
        policy = await load_policy(self.engine.ctx.core.barrier, config.password_policy)
        if policy is None:
            raise BadRequest(
                f"password policy {config.password_policy!r} does not exist"
            )
        return policy

    async def generate_password(self, config: ConnectionConfig) -> str:
        password = (await self.password_policy(config)).generate()
        try:
            check_password_safe(password, config.password_policy or "default")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return password

    # -- handlers ----------------------------------------------------------------

    async def list_configs(self, req: Request, data: dict) -> Response:
        keys = await self.storage.list("config/")
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def read_config(self, req: Request, data: dict) -> Response:
        config = await self.load(data["name"])
        if config is None:
            raise NotFound()
        return Response(data=config.public())

    def _write_lock(self, name: str) -> asyncio.Lock:
        return self._write_locks.setdefault(name, asyncio.Lock())

    async def write_config(self, req: Request, data: dict) -> None:
        async with self._write_lock(data["name"]):
            await self._write_config(data)

    async def _write_config(self, data: dict) -> None:
        existing = await self.load(data["name"])
        config = _merge(existing, data)
        await self._validate(config)
        try:
            database = build_database(config)
            if config.verify_connection:
                await database.verify()
        except DatabaseError as exc:
            raise BadRequest(
                f"error creating database object: error verifying connection: {exc}"
            ) from None
        await self.save(config)
        await self.close(config.name)
        logger.info(
            "database connection %s configured (%s)", config.name, config.plugin_name
        )

    async def _validate(self, config: ConnectionConfig) -> None:
        if config.plugin_name not in PLUGINS:
            raise BadRequest(
                f"invalid plugin_name {config.plugin_name!r}: expected one of "
                f"{', '.join(PLUGINS)}"
            )
        if not config.connection_url:
            raise BadRequest("field 'connection_url' is required")
        if not 0 < config.max_open_connections <= MAX_OPEN_CONNECTIONS:
            raise BadRequest(
                "max_open_connections must be a positive integer, at most "
                f"{MAX_OPEN_CONNECTIONS}"
            )
        if config.username_template:
            _check_template(config.username_template)
        await self.password_policy(config)

    async def delete_config(self, req: Request, data: dict) -> None:
        async with self._write_lock(data["name"]):
            await self.close(data["name"])
            await self.storage.delete(f"config/{data['name']}")

    async def reset(self, req: Request, data: dict) -> None:
        if await self.load(data["name"]) is None:
            raise BadRequest(f"no database connection named {data['name']!r}")
        await self.close(data["name"])

    async def rotate_root(self, req: Request, data: dict) -> None:
        # Two rotations at once would each store their own password while
        # the database keeps whichever ALTER ran last.
        async with self._write_lock(data["name"]):
            await self._rotate_root(data)

    async def _rotate_root(self, data: dict) -> None:
        config = await self.load(data["name"])
        if config is None:
            raise BadRequest(f"no database connection named {data['name']!r}")
        if not config.username:
            raise BadRequest(
                "unable to rotate root credentials: no username in the configuration"
            )
        _, database = await self.database(config.name)
        config.pending_password = await self.generate_password(config)
        await self.save(config)
        try:
            await database.rotate_root(
                config.root_rotation_statements, config.pending_password
            )
        except DatabaseError as exc:
            await self.close(config.name)
            await self._settle_pending(config)
            raise APIError(f"failed to rotate the root credentials: {exc}") from None
        config.password, config.pending_password = config.pending_password, ""
        await self.save(config)
        await self.close(config.name)
        logger.info(
            "rotated the root credentials of database connection %s", config.name
        )

    async def _settle_pending(self, config: ConnectionConfig) -> ConnectionConfig:
        """Keep whichever of the current and the pending root password works.

        A rotation that failed may still have reached the database (the
        reply was lost), so the new password is tried before it is dropped.
        """
        try:
            await build_database(config, config.pending_password).verify()
        except DatabaseError:
            config.pending_password = ""
        else:
            config.password, config.pending_password = config.pending_password, ""
            logger.warning(
                "connection %s: a pending root password was in effect; kept it",
                config.name,
            )
        await self.save(config)
        return config


def _merge(existing: ConnectionConfig | None, data: dict) -> ConnectionConfig:
    name = data["name"]
    if existing is None:
        if not data.get("plugin_name"):
            raise BadRequest(
                "field 'plugin_name' is required: postgresql-database-plugin or "
                "mysql-database-plugin"
            )
        config = ConnectionConfig(name=name, plugin_name=data["plugin_name"])
    else:
        config = existing
    for key in CONFIG_FIELDS:
        if key not in data:
            continue
        value = data[key]
        if key == "root_rotation_statements":
            value = statement_list(key, value)
        setattr(config, key, value)
    return config


def _check_template(source: str) -> None:
    """Parse and render a username template once, so that a template that
    can never render fails at configuration time, not at every creds read."""
    try:
        UsernameTemplate(source).render("token", "role")
    except TemplateError as exc:
        raise BadRequest(f"invalid username_template: {exc}") from None


def _glob_match(pattern: str, value: str) -> bool:
    """Match Vault's allowed_roles globs, where only '*' is special."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value) is not None


async def _close_quietly(name: str, database: Database) -> None:
    try:
        await database.close()
    except Exception:
        logger.exception("closing the pool of database connection %s failed", name)
