"""The postgresql-database-plugin: psycopg 3 with one async pool per connection.

Statements the operator did not write are built with psycopg.sql, so names
and passwords are quoted by the driver. Operator statements are sent as
they are after substitution (see plugin.py). psycopg sends a statement
without parameters through the simple query protocol, so one entry may
contain several statements, including dollar-quoted bodies.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mssm.engines.database.plugin import (
    CreateUserError,
    Database,
    DatabaseError,
    NewUser,
    PoolLimits,
    render,
    retry_delay,
    scrub,
    statement_values,
    url_passwords,
)

logger = logging.getLogger(__name__)

PLUGIN_NAME = "postgresql-database-plugin"
DEFAULT_USERNAME_TEMPLATE = (
    '{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) '
    "(random 20) (unix_time) | truncate 63 }}"
)
CONNECT_TIMEOUT_SECONDS = "5"
POOL_TIMEOUT_SECONDS = 10.0
# Attempts at a creation or revocation that failed on a concurrent catalog
# update: two GRANTs on one object at once fail with "tuple concurrently
# updated".
CREATE_ATTEMPTS = 10
_RETRY_STATES = {"40001", "40P01"}
_USER_MARK = "mssmusernameplaceholder"
_PASSWORD_MARK = "mssmpasswordplaceholder"  # noqa: S105 - a marker, not a secret


def build_conninfo(url: str, username: str, password: str) -> dict[str, Any]:
    """Parse a PostgreSQL URL or key=value string with {{username}} and
    {{password}} placeholders into connection parameters.

    The placeholders are parsed as markers and replaced afterwards, so the
    credentials need no URL or conninfo escaping by the operator.
    """
    marked = url.replace("{{username}}", _USER_MARK).replace(
        "{{password}}", _PASSWORD_MARK
    )
    try:
        params: dict[str, Any] = conninfo_to_dict(marked)
    except psycopg.ProgrammingError as exc:
        message = str(exc).replace(_USER_MARK, "{{username}}")
        message = message.replace(_PASSWORD_MARK, "{{password}}")
        # libpq quotes the URL, and with it a password written there literally.
        message = scrub(_one_line(message), url_passwords(url))
        raise DatabaseError(f"invalid connection_url: {message}") from None
    for key, value in params.items():
        if isinstance(value, str):
            value = value.replace(_USER_MARK, username)
            params[key] = value.replace(_PASSWORD_MARK, password)
    if username:
        params.setdefault("user", username)
    if password:
        params.setdefault("password", password)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    params.setdefault("application_name", "mssm")
    return params


class PostgreSQLDatabase(Database):
    max_username_length = 63
    default_username_template = DEFAULT_USERNAME_TEMPLATE

    def __init__(self, conninfo: dict[str, Any], limits: PoolLimits) -> None:
        self._conninfo = conninfo
        self._limits = limits
        self._pool: AsyncConnectionPool | None = None
        self._pool_lock = asyncio.Lock()
        self._secrets = [str(conninfo.get("password", ""))]

    # -- connections -----------------------------------------------------------

    async def verify(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(**self._conninfo)
        except psycopg.Error as exc:
            raise DatabaseError(self._message(exc)) from None
        async with conn:
            await conn.execute("SELECT 1")

    async def _get_pool(self) -> AsyncConnectionPool:
        async with self._pool_lock:
            if self._pool is None:
                lifetime = {}
                if self._limits.max_lifetime:
                    lifetime["max_lifetime"] = float(self._limits.max_lifetime)
                pool = AsyncConnectionPool(
                    kwargs=self._conninfo | {"autocommit": True},
                    min_size=0,
                    max_size=max(self._limits.max_open, 1),
                    timeout=POOL_TIMEOUT_SECONDS,
                    open=False,
                    name="mssm-postgresql",
                    **lifetime,
                )
                await pool.open(wait=False)
                self._pool = pool
            return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        pool = await self._get_pool()
        try:
            async with pool.connection() as conn:
                yield conn
        except PoolTimeout:
            # The pool reports only a timeout, so one direct attempt finds the cause.
            raise DatabaseError(await self._unreachable_reason()) from None

    async def _unreachable_reason(self) -> str:
        try:
            conn = await psycopg.AsyncConnection.connect(**self._conninfo)
        except psycopg.Error as exc:
            return self._message(exc)
        await conn.close()
        return f"no free connection within {POOL_TIMEOUT_SECONDS:.0f}s"

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close(timeout=5)
            self._pool = None

    def _message(self, exc: BaseException) -> str:
        return scrub(_one_line(str(exc) or type(exc).__name__), self._secrets)

    # -- dynamic users -----------------------------------------------------------

    async def create_user(self, user: NewUser) -> None:
        values = statement_values(user.username, user.password, user.expiration)
        secrets = [user.password, *self._secrets]
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                await self._run_in_transaction(user.statements, values)
                return
            except DatabaseError as exc:
                raise CreateUserError(str(exc), rolled_back=True) from None
            except psycopg.Error as exc:
                if _retryable(exc) and attempt < CREATE_ATTEMPTS:
                    await asyncio.sleep(retry_delay(attempt))
                    continue
                message = scrub(_one_line(str(exc)), secrets)
                rolled_back = not isinstance(exc, psycopg.OperationalError)
                await self._run_rollback(user, values)
                raise CreateUserError(message, rolled_back) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run_rollback(self, user: NewUser, values: dict[str, str]) -> None:
        if not user.rollback_statements:
            return
        try:
            await self._run_in_transaction(user.rollback_statements, values)
        except (psycopg.Error, DatabaseError) as exc:
            logger.warning(
                "rollback statements for %s failed: %s",
                user.username,
                scrub(_one_line(str(exc)), [user.password, *self._secrets]),
            )

    async def _run_in_transaction(
        self, statements: list[str], values: dict[str, str]
    ) -> None:
        # BEGIN, the statements and COMMIT go as one simple query: one round
        # trip instead of one per statement, so the locks they take (CREATE
        # ROLE's on pg_authid) are released without waiting for this process.
        body = "\n;\n".join(render(statement, values) for statement in statements)
        async with self._connection() as conn:
            try:
                await conn.execute(f"BEGIN;\n{body}\n;\nCOMMIT")
            except psycopg.Error:
                # A failed statement leaves the transaction open and aborted.
                await _rollback(conn)
                raise

    async def revoke_user(
        self, username: str, statements: list[str], details: dict
    ) -> None:
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                await self._revoke_once(username, statements)
                return
            except psycopg.Error as exc:
                # Revocations of several users of one role at once collide
                # on the same grants, as creations do.
                if _retryable(exc) and attempt < CREATE_ATTEMPTS:
                    await asyncio.sleep(retry_delay(attempt))
                    continue
                if statements and not await self._role_exists(username):
                    return
                raise DatabaseError(self._message(exc)) from None

    async def _revoke_once(self, username: str, statements: list[str]) -> None:
        if statements:
            await self._run_in_transaction(statements, statement_values(username))
        else:
            await self._default_revoke(username)

    async def _default_revoke(self, username: str) -> None:
        """Drop the role even if it owns objects or has been granted privileges.

        Login is blocked first, in its own transaction, so that a role
        that cannot be dropped (it owns objects in another database) is at
        least unusable. Then the admin takes membership of the role, which
        REASSIGN OWNED and pg_terminate_backend need, ends the role's
        sessions, takes over its objects, and drops its privileges and the
        role in one transaction.
        """
        role = sql.Identifier(username)
        async with self._connection() as conn:
            if not await _exists(conn, username):
                return
            await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
            await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s AND pid <> pg_backend_pid()",
                [username],
            )
            async with conn.transaction():
                await conn.execute(
                    sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role)
                )
                await conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                await conn.execute(sql.SQL("DROP ROLE {}").format(role))

    async def _role_exists(self, username: str) -> bool:
        try:
            async with self._connection() as conn:
                return await _exists(conn, username)
        except psycopg.Error as exc:
            raise DatabaseError(self._message(exc)) from None

    async def renew_user(
        self, username: str, statements: list[str], expiration: str
    ) -> None:
        # The lease manager renews one lease at a time, but another node, or
        # a GRANT to the same role, can still update its catalog row at once.
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                await self._renew_once(username, statements, expiration)
                return
            except psycopg.Error as exc:
                if _retryable(exc) and attempt < CREATE_ATTEMPTS:
                    await asyncio.sleep(retry_delay(attempt))
                    continue
                raise DatabaseError(self._message(exc)) from None

    async def _renew_once(
        self, username: str, statements: list[str], expiration: str
    ) -> None:
        if statements:
            values = statement_values(username, expiration=expiration)
            await self._run_in_transaction(statements, values)
            return
        async with self._connection() as conn:
            await conn.execute(
                sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(username), sql.Literal(expiration)
                )
            )

    # -- passwords ---------------------------------------------------------------

    async def set_password(
        self, username: str, statements: list[str], password: str
    ) -> None:
        query = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
            sql.Identifier(username), sql.Literal(password)
        )
        await self._change_password(statements, username, password, query)

    async def rotate_root(self, statements: list[str], password: str) -> None:
        username = str(self._conninfo.get("user", ""))
        query = sql.SQL("ALTER ROLE CURRENT_USER WITH PASSWORD {}").format(
            sql.Literal(password)
        )
        await self._change_password(statements, username, password, query)

    async def _change_password(
        self, statements: list[str], username: str, password: str, default: sql.Composed
    ) -> None:
        try:
            if statements:
                values = statement_values(username, password)
                await self._run_in_transaction(statements, values)
                return
            async with self._connection() as conn:
                await conn.execute(default)
        except psycopg.Error as exc:
            message = scrub(_one_line(str(exc)), [password, *self._secrets])
            raise DatabaseError(message) from None


async def _rollback(conn: psycopg.AsyncConnection) -> None:
    try:
        await conn.rollback()
    except psycopg.Error as exc:
        # The pool tries again when the connection returns, and discards
        # it if that fails too.
        logger.warning("rollback after a failed transaction failed: %s", exc)


async def _exists(conn: psycopg.AsyncConnection, username: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [username])
    return await cursor.fetchone() is not None


def _retryable(exc: psycopg.Error) -> bool:
    state = getattr(exc, "sqlstate", None) or ""
    if state in _RETRY_STATES:
        return True
    return state == "XX000" and "concurrently updated" in str(exc)


def _one_line(message: str) -> str:
    return re.sub(r"\s+", " ", message).strip()
