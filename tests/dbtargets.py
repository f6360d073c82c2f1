"""Real PostgreSQL and MariaDB targets for the database engine tests.

Each target is a fresh database and a least-privilege admin login made for
one test: on PostgreSQL a CREATEROLE login that owns the database (not a
superuser), on MySQL a login with CREATE USER and every privilege, with
grant option, on its own schema only. Teardown drops the database, the
admin, and every role or user whose name contains the target's marker;
tests put the marker into their role names so that generated user names
carry it.

An unreachable server fails the test: these tests never skip.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncmy
import psycopg
import pytest
from psycopg import sql

from tests.server import ServerProcess, start_dev

PG_SUPERUSER_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
MYSQL_ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def new_marker() -> str:
    """Return 7 random lowercase hex digits: short enough to survive truncate 8."""
    return secrets.token_hex(4)[:7]


# -- PostgreSQL -------------------------------------------------------------------


@dataclass
class PostgresTarget:
    marker: str
    database: str
    admin: str
    admin_password: str

    @property
    def connection_url(self) -> str:
        return (
            "postgresql://{{username}}:{{password}}@127.0.0.1:5432/"
            f"{self.database}?sslmode=disable"
        )

    def config(self, **extra: Any) -> dict[str, Any]:
        """Return the body of a database/config write for this target."""
        return {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": self.connection_url,
            "username": self.admin,
            "password": self.admin_password,
            "allowed_roles": "*",
        } | extra

    def superuser(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(
            f"host=127.0.0.1 user=postgres dbname={database or self.database}",
            autocommit=True,
        )

    def query(self, statement: str, params: list | None = None) -> list[tuple]:
        with self.superuser() as conn:
            return conn.execute(statement, params).fetchall()

    def role_exists(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))

    def marked_roles(self) -> list[str]:
        """Return the roles that carry the marker, the admin excepted."""
        rows = self.query(
            "SELECT rolname FROM pg_roles WHERE strpos(rolname, %s) > 0 "
            "AND rolname <> %s ORDER BY 1",
            [self.marker, self.admin],
        )
        return [row[0] for row in rows]

    def login(self, username: str, password: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            dbname=self.database,
            user=username,
            password=password,
            autocommit=True,
            connect_timeout=5,
        )

    def password_matches(self, role: str, password: str) -> bool:
        """Check password against the role's stored SCRAM-SHA-256 verifier.

        The local server trusts every login on 127.0.0.1, so a login proves
        nothing about the password; the verifier does.
        """
        rows = self.query(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]
        )
        if not rows or not rows[0][0]:
            return False
        return scram_matches(rows[0][0], password)


def scram_matches(verifier: str, password: str) -> bool:
    """Check password against "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
    (RFC 5802 and RFC 7677; passwords here are ASCII, so SASLprep is a no-op)."""
    method, _, rest = verifier.partition("$")
    if method != "SCRAM-SHA-256":
        return False
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key, _, server_key = keys.partition(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    expected_stored = hashlib.sha256(client_key).digest()
    expected_server = hmac.digest(salted, b"Server Key", "sha256")
    return hmac.compare_digest(
        expected_stored, base64.b64decode(stored_key)
    ) and hmac.compare_digest(expected_server, base64.b64decode(server_key))


def create_postgres_target() -> PostgresTarget:
    marker = new_marker()
    target = PostgresTarget(
        marker=marker,
        database=f"mssm_t_{marker}",
        admin=f"mssm_admin_{marker}",
        admin_password=secrets.token_urlsafe(16),
    )
    with psycopg.connect(PG_SUPERUSER_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                sql.Identifier(target.admin), sql.Literal(target.admin_password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(target.database), sql.Identifier(target.admin)
            )
        )
    return target


def drop_postgres_target(target: PostgresTarget) -> None:
    with psycopg.connect(PG_SUPERUSER_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(target.database)
            )
        )
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE strpos(rolname, %s) > 0",
            [target.marker],
        ).fetchall()
        for (role,) in rows:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s",
                [role],
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def pg_target() -> Iterator[PostgresTarget]:
    target = create_postgres_target()
    try:
        yield target
    finally:
        drop_postgres_target(target)


# -- MySQL / MariaDB -------------------------------------------------------------------


def mysql_run(
    statement: str,
    args: tuple | list | None = None,
    **connect: Any,
) -> list[tuple]:
    """Run one statement synchronously (tests are synchronous) and fetch rows."""

    async def run() -> list[tuple]:
        options = MYSQL_ROOT | {"connect_timeout": 5, "autocommit": True} | connect
        conn = await asyncmy.connect(**options)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(statement, args)
                return list(await cursor.fetchall() or [])
        finally:
            conn.close()

    return asyncio.run(run())


@dataclass
class MySQLTarget:
    marker: str
    database: str
    admin: str
    admin_password: str

    @property
    def connection_url(self) -> str:
        return "{{username}}:{{password}}@tcp(127.0.0.1:3306)/" + self.database

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "plugin_name": "mysql-database-plugin",
            "connection_url": self.connection_url,
            "username": self.admin,
            "password": self.admin_password,
            "allowed_roles": "*",
        } | extra

    def query(self, statement: str, args: tuple | list | None = None) -> list[tuple]:
        return mysql_run(statement, args)

    def user_hosts(self, name: str) -> list[str]:
        rows = self.query("SELECT Host FROM mysql.user WHERE User = %s", (name,))
        return sorted(row[0] for row in rows)

    def marked_users(self) -> list[tuple[str, str]]:
        """Return the (user, host) pairs that carry the marker, the admin excepted."""
        rows = self.query(
            "SELECT User, Host FROM mysql.user WHERE LOCATE(%s, User) > 0 "
            "AND User <> %s ORDER BY 1, 2",
            (self.marker, self.admin),
        )
        return [(row[0], row[1]) for row in rows]

    def login(
        self,
        username: str,
        password: str,
        statement: str = "SELECT 1",
        use_schema: bool = True,
    ) -> list:
        schema = {"database": self.database} if use_schema else {}
        return mysql_run(statement, user=username, password=password, **schema)


def create_mysql_target() -> MySQLTarget:
    marker = new_marker()
    target = MySQLTarget(
        marker=marker,
        database=f"mssm_t_{marker}",
        admin=f"mssm_admin_{marker}",
        admin_password=secrets.token_urlsafe(16),
    )
    mysql_run(f"CREATE DATABASE `{target.database}`")
    mysql_run(
        "CREATE USER %s@'%%' IDENTIFIED BY %s", (target.admin, target.admin_password)
    )
    mysql_run(
        f"GRANT ALL PRIVILEGES ON `{target.database}`.* TO %s@'%%' WITH GRANT OPTION",
        (target.admin,),
    )
    mysql_run("GRANT CREATE USER ON *.* TO %s@'%%'", (target.admin,))
    return target


def drop_mysql_target(target: MySQLTarget) -> None:
    mysql_run(f"DROP DATABASE IF EXISTS `{target.database}`")
    for user, host in target.marked_users():
        mysql_run("DROP USER IF EXISTS %s@%s", (user, host))
    mysql_run("DROP USER IF EXISTS %s@'%%'", (target.admin,))


@pytest.fixture
def mysql_target() -> Iterator[MySQLTarget]:
    target = create_mysql_target()
    try:
        yield target
    finally:
        drop_mysql_target(target)


# -- servers ---------------------------------------------------------------------------

# A retry schedule short enough for tests to watch: 1 s, 2 s, then
# irrevocable after 3 failures (still retried every 2 s).
FAST_RETRY_ENV = {
    "MSSM_LEASE_RETRY_BASE_SECONDS": "1",
    "MSSM_LEASE_RETRY_MAX_SECONDS": "2",
    "MSSM_LEASE_MAX_ATTEMPTS": "3",
}


@contextmanager
def fast_retry_env() -> Iterator[None]:
    """Set FAST_RETRY_ENV for servers started inside the block."""
    saved = {name: os.environ.get(name) for name in FAST_RETRY_ENV}
    os.environ.update(FAST_RETRY_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def lease_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dev server with the fast retry schedule, shared by one test module."""
    with fast_retry_env():
        server = start_dev(tmp_path_factory.mktemp("lease-dev"))
    try:
        yield server
    finally:
        server.stop()


def mount_database(server: ServerProcess, marker: str) -> str:
    """Mount a database engine at a path unique to the test; return it."""
    path = f"db-{marker}"
    answer = server.request("POST", f"sys/mounts/{path}", json={"type": "database"})
    assert answer.status_code == 204, answer.text
    return path


def wait_until(
    check: Callable[[], bool], timeout: float, interval: float = 0.25
) -> bool:
    """Poll check until it returns True or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
