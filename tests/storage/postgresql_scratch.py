"""A schema of its own for each test that stores on the test PostgreSQL.

The backend's table is created in the first schema of the search_path, which
the connection URL sets, so runs never share a table. An unreachable server
fails the test: these tests never skip.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def storage_url(schema: str, password: str = "") -> str:
    """Return a connection URL whose sessions use schema and name themselves after it.

    Trust authentication ignores the password. Tests pass one to check that
    no message repeats it.
    """
    user = f"postgres:{password}" if password else "postgres"
    return (
        f"postgresql://{user}@127.0.0.1:5432/test"
        f"?options=-csearch_path%3D{schema}&application_name={schema}"
    )


def admin_query(statement: str, parameters: tuple = ()) -> list[tuple]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        cursor = conn.execute(statement, parameters)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def scratch_schema() -> Iterator[str]:
    """Create an empty schema, yield its name, then drop it with its tables."""
    schema = f"mssm_test_{secrets.token_hex(4)}"
    name = sql.Identifier(schema)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
    try:
        yield schema
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(name))
