"""Leases end to end: production servers on SQLite, killed and restarted,
against the real PostgreSQL and MariaDB on 127.0.0.1.

Every server here runs with the fast retry schedule (1 s, 2 s, then
irrevocable after 3 failures), set through the environment.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

from tests.dbtargets import (  # noqa: F401 - fixtures
    MySQLTarget,
    PostgresTarget,
    fast_retry_env,
    mysql_target,
    pg_target,
    wait_until,
)
from tests.server import ServerProcess, start_production

PG_CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON public.items TO "{{name}}";',
]
MY_CREATE = [
    "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
    "GRANT SELECT ON `{schema}`.* TO '{{name}}'@'%';",
]
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class Setup:
    server: ServerProcess
    directory: Path

    @property
    def client(self) -> hvac.Client:
        return hvac.Client(url=self.server.url, token=self.server.root_token)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.server.request(method, path, **kwargs)

    def write(self, path: str, body: dict) -> None:
        answer = self.request("POST", path, json=body)
        assert answer.status_code in (200, 204), answer.text

    def lookup(self, lease_id: str) -> requests.Response:
        return self.request("PUT", "sys/leases/lookup", json={"lease_id": lease_id})

    def restart(self, kill: bool = False, pause: float = 0) -> None:
        with fast_retry_env():
            if kill:
                self.server.kill()
            else:
                self.server.stop()
            time.sleep(pause)
            self.server.start()
        self.server.unseal()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with fast_retry_env():
        server = start_production(tmp_path)
    result = Setup(server, tmp_path)
    result.write("sys/mounts/database", {"type": "database"})
    yield result
    server.stop()


@pytest.fixture
def pg(setup: Setup, pg_target: PostgresTarget) -> PostgresTarget:  # noqa: F811
    with pg_target.superuser() as conn:
        conn.execute("CREATE TABLE public.items (id int)")
        conn.execute(f'ALTER TABLE public.items OWNER TO "{pg_target.admin}"')
    setup.write("database/config/pg", pg_target.config())
    return pg_target


@pytest.fixture
def my(setup: Setup, mysql_target: MySQLTarget) -> MySQLTarget:  # noqa: F811
    setup.write("database/config/my", mysql_target.config())
    return mysql_target


def pg_role(setup: Setup, target: PostgresTarget, **fields) -> str:
    name = f"r{target.marker}"
    body = {"db_name": "pg", "creation_statements": PG_CREATE} | fields
    setup.write(f"database/roles/{name}", body)
    return name


def my_role(setup: Setup, target: MySQLTarget, **fields) -> str:
    name = f"r{target.marker}"
    statements = [s.replace("{schema}", target.database) for s in MY_CREATE]
    body = {"db_name": "my", "creation_statements": statements} | fields
    setup.write(f"database/roles/{name}", body)
    return name


def creds(setup: Setup, role: str, token: str | None = None) -> dict:
    answer = setup.request("GET", f"database/creds/{role}", token=token or "")
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- the hvac calls of the acceptance list ------------------------------------


def test_hvac_database_calls(setup: Setup, pg: PostgresTarget) -> None:
    client = setup.client
    database = client.secrets.database
    database.configure(
        "pg2",
        "postgresql-database-plugin",
        allowed_roles=["*"],
        connection_url=pg.connection_url,
        username=pg.admin,
        password=pg.admin_password,
    )
    role = f"r{pg.marker}"
    database.create_role(role, "pg2", PG_CREATE, default_ttl=60, max_ttl=120)
    assert database.list_roles()["data"]["keys"] == [role]
    assert database.read_role(role)["data"]["max_ttl"] == 120
    issued = database.generate_credentials(role)
    username = issued["data"]["username"]
    assert pg.role_exists(username)
    lease = client.sys.read_lease(issued["lease_id"])["data"]
    assert lease["id"] == issued["lease_id"]
    renewed = client.sys.renew_lease(issued["lease_id"], increment=90)
    assert renewed["lease_duration"] == 90
    client.sys.revoke_lease(issued["lease_id"])
    assert not pg.role_exists(username)
    others = [database.generate_credentials(role)["data"]["username"] for _ in range(2)]
    client.sys.revoke_prefix(f"database/creds/{role}")
    assert not any(pg.role_exists(name) for name in others)
    database.delete_role(role)
    account = f"svc_{pg.marker}"
    with pg.superuser() as conn:
        conn.execute(f"CREATE ROLE \"{account}\" LOGIN PASSWORD 'Init1al!'")
    database.create_static_role(
        role, "pg2", account, ["ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'"], 3600
    )
    first = database.get_static_credentials(role)["data"]["password"]
    database.rotate_static_role_credentials(role)
    second = database.get_static_credentials(role)["data"]["password"]
    assert first != second
    assert pg.password_matches(account, second)
    database.rotate_root_credentials("pg2")
    assert not pg.password_matches(pg.admin, pg.admin_password)


# -- expiry across restarts ---------------------------------------------------


def test_kill_with_live_lease(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="5s")
    issued = creds(setup, role)
    username = issued["data"]["username"]
    setup.restart(kill=True, pause=10)
    assert wait_until(lambda: not pg.role_exists(username), timeout=10)
    assert setup.lookup(issued["lease_id"]).status_code == 400


def test_revocation_retried_after_outage(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="3s")
    issued = creds(setup, role)
    username = issued["data"]["username"]
    down = pg.config(
        connection_url=pg.connection_url.replace(":5432/", ":1/"),
        verify_connection=False,
    )
    setup.write("database/config/pg", down)

    def pending() -> bool:
        answer = setup.lookup(issued["lease_id"])
        return answer.ok and answer.json()["data"]["state"] != "active"

    assert wait_until(pending, timeout=10)
    assert setup.lookup(issued["lease_id"]).json()["data"]["ttl"] == 0

    def failed_once() -> bool:
        data = setup.lookup(issued["lease_id"]).json()["data"]
        return data.get("revoke_attempts", 0) >= 1

    # Each attempt waits up to the pool's timeout for a connection.
    assert wait_until(failed_once, timeout=30)
    data = setup.lookup(issued["lease_id"]).json()["data"]
    assert data["state"] in ("revoke_pending", "irrevocable")
    assert "Connection refused" in data["revoke_error"]
    assert pg.role_exists(username)
    setup.write("database/config/pg", pg.config())
    assert wait_until(lambda: not pg.role_exists(username), timeout=10)
    assert wait_until(lambda: setup.lookup(issued["lease_id"]).status_code == 400, 5)


def test_kill_during_creds_loop(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="8s")
    stop = threading.Event()
    issued: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                answer = setup.request("GET", f"database/creds/{role}")
            except requests.RequestException:
                return
            if answer.ok:
                issued.append(answer.json()["data"]["username"])

    workers = [threading.Thread(target=loop) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(2)
    setup.server.kill()
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    created = pg.marked_roles()
    assert issued
    assert set(issued) <= set(created)
    setup.restart()
    listing = setup.request("LIST", f"sys/leases/lookup/database/creds/{role}/")
    assert len(listing.json()["data"]["keys"]) >= len(created)
    # Every user MSSM created has a lease: all of them are dropped when
    # their leases expire, including any whose response never arrived.
    assert wait_until(lambda: pg.marked_roles() == [], timeout=25)
    empty = setup.request("LIST", f"sys/leases/lookup/database/creds/{role}/")
    assert empty.status_code == 404


# -- concurrency --------------------------------------------------------------


def test_concurrent_creds_postgresql(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="10m")
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(
            pool.map(
                lambda _: setup.request("GET", f"database/creds/{role}"), range(200)
            )
        )
    assert [a.status_code for a in answers].count(200) == 200
    users = {
        a.json()["data"]["username"]: a.json()["data"]["password"] for a in answers
    }
    assert len(users) == 200
    assert set(pg.marked_roles()) == set(users)
    for username, password in list(users.items())[:20]:
        assert pg.password_matches(username, password)
        with pg.login(username, password) as conn:
            conn.execute("SELECT * FROM public.items")
    setup.client.sys.revoke_prefix(f"database/creds/{role}")
    assert pg.marked_roles() == []


def test_concurrent_creds_mysql(setup: Setup, my: MySQLTarget) -> None:
    role = my_role(setup, my, default_ttl="10m")
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(
            pool.map(
                lambda _: setup.request("GET", f"database/creds/{role}"), range(200)
            )
        )
    assert [a.status_code for a in answers].count(200) == 200
    users = {
        a.json()["data"]["username"]: a.json()["data"]["password"] for a in answers
    }
    assert len(users) == 200
    assert {user for user, _ in my.marked_users()} == set(users)
    for username, password in list(users.items())[:20]:
        assert my.login(username, password) == [(1,)]
    setup.client.sys.revoke_prefix(f"database/creds/{role}")
    assert my.marked_users() == []


# -- tokens -------------------------------------------------------------------


def test_token_revocation_drops_users(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg)
    token = setup.request("POST", "auth/token/create", json={"ttl": "10m"})
    client_token = token.json()["auth"]["client_token"]
    names = [creds(setup, role, client_token)["data"]["username"] for _ in range(2)]
    revoked = setup.request("POST", "auth/token/revoke", json={"token": client_token})
    assert revoked.status_code == 204
    assert wait_until(lambda: not any(pg.role_exists(n) for n in names), timeout=10)


def test_lease_capped_at_token_ttl(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="1h")
    token = setup.request("POST", "auth/token/create", json={"ttl": "30s"})
    client_token = token.json()["auth"]["client_token"]
    issued = creds(setup, role, client_token)
    assert 28 <= issued["lease_duration"] <= 30
    assert "remaining token TTL" in issued["warnings"][0]


@pytest.mark.parametrize(
    "display_name",
    ["o'brien", 'quo"te', "semi;colon", "back\\slash", "Jöse 🙂", "x' OR '1'='1"],
)
def test_unsafe_display_names(
    setup: Setup, pg: PostgresTarget, my: MySQLTarget, display_name: str
) -> None:
    pg_name = pg_role(setup, pg)
    my_name = f"m{my.marker}"
    statements = [s.replace("{schema}", my.database) for s in MY_CREATE]
    setup.write(
        f"database/roles/{my_name}",
        {"db_name": "my", "creation_statements": statements},
    )
    token = setup.request(
        "POST", "auth/token/create", json={"display_name": display_name}
    )
    assert token.status_code == 200, token.text
    client_token = token.json()["auth"]["client_token"]
    pg_user = creds(setup, pg_name, client_token)["data"]["username"]
    my_user = creds(setup, my_name, client_token)["data"]["username"]
    for name in (pg_user, my_user):
        assert SAFE_NAME.fullmatch(name), name
    assert pg.marked_roles() == [pg_user]
    assert my.marked_users() == [(my_user, "%")]


def test_unsafe_role_names_not_routed(setup: Setup, pg: PostgresTarget) -> None:
    for name in ["a'b", 'a"b', "a;b", "a\\b", "é", "a b"]:
        body = {"db_name": "pg", "creation_statements": PG_CREATE}
        answer = setup.request("POST", f"database/roles/{name}", json=body)
        assert answer.status_code == 404, name
    assert pg.marked_roles() == []


# -- bookkeeping: irrevocable leases, counts, tidy ----------------------------


def _gauge(setup: Setup, state: str) -> float:
    text = setup.request("GET", "sys/metrics", params={"format": "prometheus"}).text
    match = re.search(rf'^mssm_leases{{state="{state}"}} (\S+)$', text, re.M)
    assert match is not None, text
    return float(match.group(1))


def test_irrevocable_bookkeeping(setup: Setup, pg: PostgresTarget) -> None:
    good = pg_role(setup, pg, default_ttl="5s")
    bad = f"b{pg.marker}"
    setup.write(
        f"database/roles/{bad}",
        {
            "db_name": "pg",
            "creation_statements": PG_CREATE,
            "revocation_statements": ['DROP ROLE "{{name}}_missing";'],
            "default_ttl": "5s",
        },
    )
    for _ in range(3):
        creds(setup, good)
    bad_leases = [creds(setup, bad)["lease_id"] for _ in range(2)]

    def both_irrevocable() -> bool:
        answer = setup.request(
            "GET", "sys/leases/count", params={"type": "irrevocable"}
        )
        return answer.json()["data"]["lease_count"] == 2

    assert wait_until(both_irrevocable, timeout=25)
    count = setup.request("GET", "sys/leases/count", params={"type": "irrevocable"})
    accessor = setup.request("GET", "sys/mounts/database").json()["accessor"]
    assert count.json()["data"]["counts"] == {accessor: 2}
    listed = setup.request("GET", "sys/leases", params={"type": "irrevocable"})
    entries = listed.json()["data"]["leases"]
    assert sorted(e["lease_id"] for e in entries) == sorted(bad_leases)
    for entry in entries:
        assert entry["mount_id"] == accessor
        assert 0 < len(entry["error"]) <= 240
        assert "_missing" in entry["error"]
        assert pg.admin_password not in entry["error"]
    assert setup.request("GET", "sys/leases/count").json()["data"]["lease_count"] == 2
    keys = setup.request("LIST", f"sys/leases/lookup/database/creds/{bad}/")
    assert sorted(keys.json()["data"]["keys"]) == sorted(
        lease.rsplit("/", 1)[1] for lease in bad_leases
    )
    lookup = setup.lookup(bad_leases[0]).json()["data"]
    assert lookup["ttl"] == 0
    assert lookup["state"] == "irrevocable"
    assert _gauge(setup, "irrevocable") == 2
    assert _gauge(setup, "active") == 0

    nothing = setup.request("PUT", "sys/leases/revoke-prefix/database/creds/nosuchrole")
    assert nothing.status_code == 200
    assert "no leases matched" in nothing.json()["warnings"][0]
    forced = setup.request("PUT", f"sys/leases/revoke-force/database/creds/{bad}")
    assert forced.status_code == 204
    assert setup.request("GET", "sys/leases/count").json()["data"]["lease_count"] == 0
    empty = setup.request("GET", "sys/leases", params={"type": "irrevocable"})
    assert empty.json()["data"] == {"lease_count": 0, "leases": []}
    assert setup.lookup(bad_leases[0]).status_code == 400
    assert _gauge(setup, "irrevocable") == 0


def test_revoke_force_needs_sudo(setup: Setup, pg: PostgresTarget) -> None:
    policy = 'path "sys/leases/*" { capabilities = ["create", "update", "read"] }'
    setup.write("sys/policies/acl/lease-operator", {"policy": policy})
    token = setup.request(
        "POST", "auth/token/create", json={"policies": ["lease-operator"]}
    )
    client_token = token.json()["auth"]["client_token"]
    for path in (
        "sys/leases/revoke-force/database/creds/x",
        "sys/leases/revoke-prefix/database/creds/x",
        "sys/revoke-force/database/creds/x",
        "sys/revoke-prefix/database/creds/x",
    ):
        answer = setup.request("PUT", path, token=client_token)
        assert answer.status_code == 403, path
    role = pg_role(setup, pg)
    lease_id = creds(setup, role)["lease_id"]
    looked = setup.request(
        "PUT", "sys/leases/lookup", token=client_token, json={"lease_id": lease_id}
    )
    assert looked.status_code == 200


def _token_keys(directory: Path) -> set[str]:
    with sqlite3.connect(directory / "mssm.db") as conn:
        rows = conn.execute(
            "SELECT key FROM entries WHERE key LIKE 'sys/token/id/%'"
        ).fetchall()
    return {row[0] for row in rows}


def test_tidy_revokes_orphaned_lease(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg, default_ttl="1h")
    before = _token_keys(setup.directory)
    token = setup.request("POST", "auth/token/create", json={"ttl": "10m"})
    client_token = token.json()["auth"]["client_token"]
    (token_key,) = _token_keys(setup.directory) - before
    issued = creds(setup, role, client_token)
    username = issued["data"]["username"]
    setup.server.stop()
    # Remove the token entry behind the server's back.
    with sqlite3.connect(setup.directory / "mssm.db") as conn:
        conn.execute("DELETE FROM entries WHERE key = ?", (token_key,))
    setup.restart()
    assert pg.role_exists(username)
    tidy = setup.request("POST", "sys/leases/tidy")
    assert tidy.status_code == 202
    assert "background" in tidy.json()["warnings"][0]
    assert wait_until(lambda: not pg.role_exists(username), timeout=10)
    assert setup.lookup(issued["lease_id"]).status_code == 400
    assert setup.request("GET", "sys/leases/count").json()["data"]["lease_count"] == 0


# -- remount ------------------------------------------------------------------


def test_remount_revokes_leases(setup: Setup, pg: PostgresTarget) -> None:
    role = pg_role(setup, pg)
    first, second = creds(setup, role), creds(setup, role)
    moved = setup.request("POST", "sys/remount", json={"from": "database", "to": "db2"})
    assert moved.status_code == 200
    migration = moved.json()["migration_id"]
    assert moved.json()["data"]["migration_id"] == migration

    def finished() -> bool:
        status = setup.request("GET", f"sys/remount/status/{migration}").json()
        return status["data"]["migration_info"]["status"] == "success"

    assert wait_until(finished, timeout=15)
    info = setup.request("GET", f"sys/remount/status/{migration}").json()["data"]
    assert info["migration_info"]["source_mount"] == "database/"
    assert info["migration_info"]["target_mount"] == "db2/"
    for issued in (first, second):
        assert setup.lookup(issued["lease_id"]).status_code == 400
        assert not pg.role_exists(issued["data"]["username"])
    moved_creds = setup.request("GET", f"db2/creds/{role}")
    assert moved_creds.status_code == 200
    assert moved_creds.json()["lease_id"].startswith(f"db2/creds/{role}/")
    assert setup.request("GET", f"database/creds/{role}").status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"from": "secret", "to": "team/app/x"}, ""),
        ({"from": "secret", "to": "sys/x"}, "protected"),
        ({"from": "nosuch", "to": "x2"}, "no matching mount"),
        ({"from": "database"}, "both 'from' and 'to'"),
        ({"from": "database", "to": "database/x"}, "already in use"),
    ],
)
def test_remount_rejected(setup: Setup, body: dict, fragment: str) -> None:
    setup.write("sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    setup.write("sys/mounts/team/app", {"type": "kv"})
    answer = setup.request("POST", "sys/remount", json=body)
    assert answer.status_code == 400
    assert fragment in answer.json()["errors"][0]
    mounts = setup.request("GET", "sys/mounts").json()["data"]
    assert "secret/" in mounts
