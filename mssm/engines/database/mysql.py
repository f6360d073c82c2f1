"""The mysql-database-plugin (MySQL and MariaDB), on asyncmy with one pool
per connection.

MySQL commits DDL implicitly, so a creation that fails half-way cannot be
rolled back by the transaction alone: the rollback statements run, or by
default the user is dropped at every host the creation statements named.
Each operator entry is split on semicolons outside quotes and sent one
statement at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncmy
from asyncmy.errors import MySQLError

from mssm.engines.database.plugin import (
    CreateUserError,
    Database,
    DatabaseError,
    NewUser,
    PoolLimits,
    render,
    retry_delay,
    scrub,
    split_statements,
    statement_values,
)

logger = logging.getLogger(__name__)

PLUGIN_NAME = "mysql-database-plugin"
# Plugins for servers older than MySQL 5.7, whose user names stop at 16.
LEGACY_PLUGIN_NAMES = (
    "mysql-legacy-database-plugin",
    "mysql-rds-database-plugin",
    "mysql-aurora-database-plugin",
)
DEFAULT_USERNAME_TEMPLATE = (
    '{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) '
    "(random 20) (unix_time) | truncate 32 }}"
)
LEGACY_USERNAME_TEMPLATE = (
    '{{ printf "v-%s-%s" (.RoleName | truncate 4) (random 20) | truncate 16 }}'
)
CONNECT_TIMEOUT_SECONDS = 5
# asyncmy's connect_timeout covers the TCP connect only, not the greeting
# that follows, so a server that accepts and stays silent (another
# service on the port) would block a connection attempt for ever.
POOL_TIMEOUT_SECONDS = 10.0
# asyncmy's own default: replace connections older than an hour.
DEFAULT_RECYCLE_SECONDS = 3600
CREATE_ATTEMPTS = 10
# Deadlock, lock wait timeout: the whole creation is retried.
_RETRY_CODES = {1213, 1205}
# Errors that mean the user named in the statement does not exist (any more).
_USER_GONE_CODES = {1396, 1269, 1141, 1147, 1403}
_DEFAULT_PORT = 3306
# The optional "@host" after a user name, in each form MySQL accepts.
_HOST_PART = (
    r"(?:@(?:'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"|`(?P<back>[^`]*)`"
    r"|(?P<bare>[A-Za-z0-9_.$:%-]+)))?"
)


@dataclass
class TLSOptions:
    mode: str = ""
    ca_pem: str = ""
    certificate_key_pem: str = ""
    skip_verify: bool = False


def parse_dsn(dsn: str, username: str, password: str) -> dict[str, Any]:
    """Parse a Go driver DSN, `user:pass@tcp(host:port)/dbname?tls=true`.

    {{username}} and {{password}} are replaced after parsing, so the values
    need no escaping; the password may contain "@", ":" or "/".
    """
    main, _, query = dsn.partition("?")
    head, slash, database = main.rpartition("/")
    if not slash:
        raise DatabaseError(
            "invalid connection_url: expected user:password@tcp(host:port)/dbname"
        )
    credentials, at, address = head.rpartition("@")
    if not at:
        address = head
    user, _, secret = credentials.partition(":")
    options = {
        "user": user.replace("{{username}}", username) or username,
        "password": secret.replace("{{password}}", password) or password,
        "db": database or None,
    }
    options |= _address(address)
    options["_params"] = dict(
        part.split("=", 1) if "=" in part else (part, "")
        for part in query.split("&")
        if part
    )
    return options


def _address(address: str) -> dict[str, Any]:
    match = re.fullmatch(r"(?P<net>\w*)(?:\((?P<addr>[^)]*)\))?", address)
    if match is None:
        raise DatabaseError(f"invalid connection_url address {address!r}")
    network = match.group("net") or "tcp"
    target = match.group("addr") or f"127.0.0.1:{_DEFAULT_PORT}"
    if network == "unix":
        return {"unix_socket": target}
    if network != "tcp":
        raise DatabaseError(
            f"invalid connection_url protocol {network!r}: use tcp or unix"
        )
    host, _, port = target.rpartition(":")
    if not host:
        host, port = target, str(_DEFAULT_PORT)
    if not port.isdigit():
        raise DatabaseError(f"invalid connection_url port {port!r}")
    return {"host": host.strip("[]"), "port": int(port)}


def tls_context(options: TLSOptions) -> ssl.SSLContext | None:
    """Build the TLS context the DSN's tls= parameter and the tls_* fields ask for."""
    mode = options.mode or ("true" if options.ca_pem else "false")
    if mode == "false":
        return None
    if mode not in ("true", "skip-verify"):
        raise DatabaseError(
            f"invalid tls={mode!r} in connection_url: use true, skip-verify or false"
        )
    try:
        context = ssl.create_default_context(cadata=options.ca_pem or None)
    except (ssl.SSLError, ValueError) as exc:
        raise DatabaseError(f"invalid tls_ca: not a PEM certificate ({exc})") from None
    if mode == "skip-verify" or options.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.certificate_key_pem:
        _load_client_certificate(context, options.certificate_key_pem)
    return context


def _load_client_certificate(context: ssl.SSLContext, pem: str) -> None:
    # ssl loads certificates from files only; the file lives in a private
    # directory for the duration of the call.
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "client.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(pem)
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as exc:
            reason = exc.reason or "not a PEM certificate and private key"
            raise DatabaseError(f"invalid tls_certificate_key: {reason}") from None


class MySQLDatabase(Database):
    default_username_template = DEFAULT_USERNAME_TEMPLATE

    def __init__(
        self,
        options: dict[str, Any],
        limits: PoolLimits,
        legacy: bool = False,
    ) -> None:
        self._options = {k: v for k, v in options.items() if not k.startswith("_")}
        self._options |= {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        }
        self._limits = limits
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._secrets = [str(options.get("password", ""))]
        self.max_username_length = 16 if legacy else 32
        if legacy:
            self.default_username_template = LEGACY_USERNAME_TEMPLATE

    # -- connections -----------------------------------------------------------

    async def verify(self) -> None:
        try:
            async with asyncio.timeout(POOL_TIMEOUT_SECONDS):
                await self._select_one()
        except TimeoutError:
            raise DatabaseError(_handshake_timeout()) from None
        except (MySQLError, OSError) as exc:
            raise DatabaseError(self._message(exc)) from None

    async def _select_one(self) -> None:
        conn = await asyncmy.connect(**self._options)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT 1")
        finally:
            await conn.ensure_closed()

    async def _get_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                recycle = self._limits.max_lifetime or DEFAULT_RECYCLE_SECONDS
                self._pool = await asyncmy.create_pool(
                    minsize=0,
                    maxsize=max(self._limits.max_open, 1),
                    pool_recycle=recycle,
                    **self._options,
                )
            return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        pool = await self._get_pool()
        try:
            async with asyncio.timeout(POOL_TIMEOUT_SECONDS):
                conn = await pool.acquire()
        except TimeoutError:
            raise DatabaseError(_handshake_timeout()) from None
        except (MySQLError, OSError) as exc:
            raise DatabaseError(self._message(exc)) from None
        try:
            yield conn
        finally:
            pool.release(conn)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None

    def _message(self, exc: BaseException, extra: list[str] | None = None) -> str:
        text = " ".join(str(arg) for arg in getattr(exc, "args", ())) or str(exc)
        text = re.sub(r"\s+", " ", text or type(exc).__name__).strip()
        return scrub(text, [*(extra or []), *self._secrets])

    async def _execute_all(
        self, conn: Any, statements: list[str], values: dict
    ) -> None:
        async with conn.cursor() as cursor:
            for entry in statements:
                for statement in split_statements(render(entry, values)):
                    await cursor.execute(statement)

    # -- dynamic users -----------------------------------------------------------

    def user_details(self, statements: list[str], username: str) -> dict[str, object]:
        rendered = " ".join(render(s, statement_values(username)) for s in statements)
        return {"hosts": user_hosts(rendered, username)}

    async def create_user(self, user: NewUser) -> None:
        values = statement_values(user.username, user.password, user.expiration)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            executed: list[str] = []
            try:
                await self._create_once(user, values, executed)
                return
            except DatabaseError as exc:
                raise CreateUserError(str(exc), rolled_back=True) from None
            except (MySQLError, OSError) as exc:
                message = self._message(exc, [user.password])
                rolled_back = await self._roll_back(user, values, executed)
                if (
                    _code(exc) in _RETRY_CODES
                    and rolled_back
                    and attempt < CREATE_ATTEMPTS
                ):
                    await asyncio.sleep(retry_delay(attempt))
                    continue
                raise CreateUserError(message, rolled_back) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _create_once(
        self, user: NewUser, values: dict, executed: list[str]
    ) -> None:
        """Run the creation statements, appending each one that may have
        taken effect to executed."""
        async with self._connection() as conn:
            await conn.begin()
            try:
                async with conn.cursor() as cursor:
                    for entry in user.statements:
                        for statement in split_statements(render(entry, values)):
                            executed.append(statement)
                            await _execute_or_forget(cursor, statement, executed)
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def _roll_back(
        self, user: NewUser, values: dict, executed: list[str]
    ) -> bool:
        """Undo what a failed creation did; return whether it certainly left
        nothing.

        Only the statements that may have run are undone, and only if one of
        them names the user. When the CREATE USER failed because the name is
        taken, the existing user (another lease's, or one MSSM never created)
        is kept.
        """
        touched = [s for s in executed if user.username in s]
        if not touched:
            return True
        hosts = user_hosts(" ".join(touched), user.username)
        try:
            async with self._connection() as conn:
                if user.rollback_statements:
                    await self._execute_all(conn, user.rollback_statements, values)
                else:
                    await self._drop_user(conn, user.username, hosts)
        except (MySQLError, OSError, DatabaseError) as exc:
            logger.warning(
                "rolling back the creation of %s failed: %s",
                user.username,
                self._message(exc, [user.password]),
            )
            return False
        return True

    async def _drop_user(self, conn: Any, username: str, hosts: list[str]) -> None:
        async with conn.cursor() as cursor:
            for host in hosts:
                await cursor.execute("DROP USER IF EXISTS %s@%s", (username, host))

    async def revoke_user(
        self, username: str, statements: list[str], details: dict
    ) -> None:
        hosts = list(details.get("hosts") or ["%"])
        try:
            async with self._connection() as conn:
                if statements:
                    await self._revoke_with(conn, username, statements)
                else:
                    await self._drop_user(conn, username, hosts)
        except (MySQLError, OSError) as exc:
            raise DatabaseError(self._message(exc)) from None

    async def _revoke_with(
        self, conn: Any, username: str, statements: list[str]
    ) -> None:
        values = statement_values(username)
        async with conn.cursor() as cursor:
            for entry in statements:
                for statement in split_statements(render(entry, values)):
                    try:
                        await cursor.execute(statement)
                    except MySQLError as exc:
                        # Revoking twice, or after someone dropped the user
                        # by hand, must succeed; other users' errors must not.
                        if _code(exc) in _USER_GONE_CODES and _names_user(
                            statement, username
                        ):
                            continue
                        raise

    async def renew_user(
        self, username: str, statements: list[str], expiration: str
    ) -> None:
        # MySQL users have no expiry of their own; without renew statements
        # the lease manager's later expiry is all a renewal changes.
        if not statements:
            return
        values = statement_values(username, expiration=expiration)
        try:
            async with self._connection() as conn:
                await self._execute_all(conn, statements, values)
        except (MySQLError, OSError) as exc:
            raise DatabaseError(self._message(exc)) from None

    # -- passwords ---------------------------------------------------------------

    async def set_password(
        self, username: str, statements: list[str], password: str
    ) -> None:
        query = ("ALTER USER %s@%s IDENTIFIED BY %s", (username, "%", password))
        await self._change_password(statements, username, password, query)

    async def rotate_root(self, statements: list[str], password: str) -> None:
        username = str(self._options.get("user", ""))
        await self._change_password(statements, username, password, None)

    async def _change_password(
        self,
        statements: list[str],
        username: str,
        password: str,
        default: tuple | None,
    ) -> None:
        """Run statements, or default; None means the connection's own login."""
        try:
            async with self._connection() as conn:
                if statements:
                    values = statement_values(username, password)
                    await self._execute_all(conn, statements, values)
                    return
                async with conn.cursor() as cursor:
                    if default is None:
                        default = await _own_account_query(cursor, password)
                    await cursor.execute(*default)
        except (MySQLError, OSError) as exc:
            raise DatabaseError(self._message(exc, [password])) from None


async def _own_account_query(cursor: Any, password: str) -> tuple:
    # MariaDB 10.11 accepts ALTER USER CURRENT_USER() but leaves the password
    # unchanged, so the account is named explicitly.
    await cursor.execute("SELECT CURRENT_USER()")
    row = await cursor.fetchone()
    user, _, host = str(row[0]).rpartition("@")
    return ("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))


async def _execute_or_forget(cursor: Any, statement: str, executed: list[str]) -> None:
    """Execute statement; drop it from executed if the server rejected it.

    A server error (codes below 2000, or 3000 and up) means the statement
    did not run. A client error (2000-2999, such as a lost connection) or an
    OSError leaves it unknown, so the statement stays in executed.
    """
    try:
        await cursor.execute(statement)
    except MySQLError as exc:
        if not 2000 <= _code(exc) < 3000 and _code(exc) != 0:
            executed.pop()
        raise


def _handshake_timeout() -> str:
    return (
        f"no connection within {POOL_TIMEOUT_SECONDS:.0f}s: the server did not "
        "complete the MySQL handshake, or every pooled connection stayed busy"
    )


def user_hosts(rendered: str, username: str) -> list[str]:
    """Return the hosts that rendered statements name for username.

    MySQL accepts the account as 'user'@'host', with any of its three
    quotes, or unquoted on either side (user@localhost), and a user named
    without a host is user@'%'. Missing one here would make the default
    revocation drop the wrong account and leave the real one behind.
    """
    name = re.escape(username)
    account = re.compile(
        rf"(?:(?P<quote>['\"`]){name}(?P=quote)|(?<![\w.$-]){name}(?![\w.$-]))"
        + _HOST_PART
    )
    hosts = []
    for match in account.finditer(rendered):
        quoted = (match.group(kind) for kind in ("single", "double", "back", "bare"))
        hosts.append(next((host for host in quoted if host is not None), "%"))
    return list(dict.fromkeys(hosts)) or ["%"]


def _names_user(statement: str, username: str) -> bool:
    return any(f"{quote}{username}{quote}" in statement for quote in "'\"`")


def _code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0
