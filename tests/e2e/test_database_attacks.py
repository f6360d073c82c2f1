"""Hostile input and races against the database engine and the lease manager.

Every test drives a real dev server over HTTP and checks the real
PostgreSQL and MariaDB on 127.0.0.1 afterwards. Each gets its own database,
least-privilege admin login and mount. An unreachable database fails the
test.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from tests.dbtargets import (  # noqa: F401 - fixtures
    MySQLTarget,
    PostgresTarget,
    lease_server,
    mount_database,
    mysql_target,
    pg_target,
)
from tests.server import ServerProcess

PG_CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON public.items TO "{{name}}";',
]
# A charset that appears nowhere else in the responses and logs these tests
# read, so that any run of it there is a piece of a generated password.
MARK_CHARSET = "QXJ"
MARK_RUN = re.compile(f"[{MARK_CHARSET}]{{4,}}")
# Longer runs for the whole log, where random lease ids could hold a short one.
MARK_LOG_RUN = re.compile(f"[{MARK_CHARSET}]{{6,}}")
MARK_POLICY = f'length = 30\nrule "charset" {{\n  charset = "{MARK_CHARSET}"\n}}\n'


@dataclass
class Env:
    server: ServerProcess
    mount: str
    marker: str

    @property
    def role(self) -> str:
        return f"r{self.marker}"

    def call(self, method: str, path: str, body: dict | None = None):
        return self.server.request(method, f"{self.mount}/{path}", json=body)

    def sys(self, method: str, path: str, body: dict | None = None):
        return self.server.request(method, path, json=body)

    def write(self, path: str, body: dict) -> None:
        answer = self.call("POST", path, body)
        assert answer.status_code == 204, answer.text

    def creds(self, role: str | None = None) -> dict:
        answer = self.call("GET", f"creds/{role or self.role}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def lookup(self, lease_id: str) -> requests.Response:
        return self.sys("PUT", "sys/leases/lookup", {"lease_id": lease_id})


@dataclass
class PgEnv(Env):
    target: PostgresTarget


@dataclass
class MyEnv(Env):
    target: MySQLTarget

    @property
    def create_statements(self) -> list[str]:
        return [
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
            f"GRANT SELECT ON `{self.target.database}`.* TO '{{{{name}}}}'@'%';",
        ]


@pytest.fixture
def pg(lease_server: ServerProcess, pg_target: PostgresTarget) -> Iterator[PgEnv]:  # noqa: F811
    with pg_target.superuser() as conn:
        conn.execute("CREATE TABLE public.items (id int)")
        conn.execute(f'ALTER TABLE public.items OWNER TO "{pg_target.admin}"')
    mount = mount_database(lease_server, pg_target.marker)
    env = PgEnv(lease_server, mount, pg_target.marker, pg_target)
    env.write("config/pg", pg_target.config())
    env.write("roles/" + env.role, {"db_name": "pg", "creation_statements": PG_CREATE})
    yield env
    lease_server.request("DELETE", f"sys/mounts/{mount}")


@pytest.fixture
def my(lease_server: ServerProcess, mysql_target: MySQLTarget) -> Iterator[MyEnv]:  # noqa: F811
    mount = mount_database(lease_server, mysql_target.marker)
    env = MyEnv(lease_server, mount, mysql_target.marker, mysql_target)
    env.write("config/my", mysql_target.config())
    role = {"db_name": "my", "creation_statements": env.create_statements}
    env.write("roles/" + env.role, role)
    yield env
    lease_server.request("DELETE", f"sys/mounts/{mount}")


def _assert_named_400(answer: requests.Response, field: str) -> None:
    assert answer.status_code == 400, answer.text
    message = " ".join(answer.json()["errors"])
    assert field in message
    assert "internal error" not in message


# -- field values that overflow -----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_ttl", 1e30),
        ("default_ttl", "99999999999999999999h"),
        ("default_ttl", "9" * 5000),
        ("max_ttl", 2**64),
    ],
    ids=["float", "hours", "digits", "uint64"],
)
def test_role_huge_ttl_rejected(pg: PgEnv, field: str, value: object) -> None:
    body = {"db_name": "pg", "creation_statements": PG_CREATE, field: value}
    _assert_named_400(pg.call("POST", "roles/huge", body), field)
    assert pg.call("GET", "roles/huge").status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_connection_lifetime", 1e30), ("max_open_connections", 10**30)],
)
def test_config_huge_value_rejected(pg: PgEnv, field: str, value: object) -> None:
    body = pg.target.config(**{field: value})
    _assert_named_400(pg.call("POST", "config/pg", body), field)
    assert pg.creds()["data"]["username"]


def test_static_role_huge_period_rejected(pg: PgEnv) -> None:
    account = f"svc_{pg.marker}"
    with pg.target.superuser() as conn:
        conn.execute(f"CREATE ROLE \"{account}\" LOGIN PASSWORD 'Init1al!'")
    body = {"db_name": "pg", "username": account, "rotation_period": 2**64}
    _assert_named_400(pg.call("POST", "static-roles/huge", body), "rotation_period")
    assert pg.target.password_matches(account, "Init1al!")


# -- username templates and password policies ---------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ " + "(" * 3000 + ".RoleName" + ")" * 3000 + " }}",
        "{{ .RoleName" + " | lowercase" * 3000 + " }}",
        '{{ printf "%s" ' + "(lowercase " * 400 + ".RoleName" + ")" * 400 + " }}",
    ],
    ids=["parentheses", "pipeline", "calls"],
)
def test_deep_template_rejected(pg: PgEnv, template: str) -> None:
    body = pg.target.config(username_template=template)
    _assert_named_400(pg.call("POST", "config/pg", body), "username_template")
    # The previous template stays in force.
    assert pg.creds()["data"]["username"].startswith("v-")


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("length = 20\nrule = 5\n", "rule"),
        ('length = 20\nrule "charset" { charset = ["a", "b"] }\n', "charset"),
        ('length = 20\nrule "charset" { charset = { a = 1 } }\n', "charset"),
    ],
)
def test_password_policy_malformed_rejected(
    lease_server: ServerProcess,  # noqa: F811
    policy: str,
    fragment: str,
) -> None:
    path = "sys/policies/password/attack-malformed"
    answer = lease_server.request("POST", path, json={"policy": policy})
    _assert_named_400(answer, fragment)
    assert lease_server.request("GET", path).status_code == 404


def test_tls_certificate_key_invalid_named(my: MyEnv) -> None:
    body = my.target.config(
        connection_url=my.target.connection_url + "?tls=true",
        tls_certificate_key="not a key",
    )
    answer = my.call("POST", "config/my", body)
    _assert_named_400(answer, "tls_certificate_key")
    assert "None" not in answer.json()["errors"][0]


# -- secrets in errors and reads ----------------------------------------------


def _use_mark_policy(env: Env, config: str, body: dict) -> None:
    policy = f"attack-{env.marker}"
    answer = env.sys("POST", f"sys/policies/password/{policy}", {"policy": MARK_POLICY})
    assert answer.status_code == 204, answer.text
    env.write(f"config/{config}", body | {"password_policy": policy})


def test_pg_error_hides_password_pieces(pg: PgEnv) -> None:
    _use_mark_policy(pg, "pg", pg.target.config())
    typo = PG_CREATE[0].replace(";", " GARBAGE;")
    pg.write("roles/typo", {"db_name": "pg", "creation_statements": [typo]})
    answer = pg.call("GET", "creds/typo")
    assert answer.status_code == 500
    message = answer.json()["errors"][0]
    # PostgreSQL quotes the statement up to the error: the password's tail.
    assert "GARBAGE" in message
    assert MARK_RUN.search(message) is None, message
    assert MARK_LOG_RUN.search(pg.server.log_path.read_text()) is None


def test_mysql_error_hides_password_pieces(my: MyEnv) -> None:
    _use_mark_policy(my, "my", my.target.config())
    # MariaDB quotes 80 characters from the error on, which ends inside
    # the password after this padding.
    typo = "CREATE USER '{{name}}'@'%' IDENTIFIED BYY '" + "a" * 60 + "{{password}}'"
    my.write("roles/typo", {"db_name": "my", "creation_statements": [typo]})
    answer = my.call("GET", "creds/typo")
    assert answer.status_code == 500
    message = answer.json()["errors"][0]
    assert "BYY" in message
    assert MARK_RUN.search(message) is None, message
    assert MARK_LOG_RUN.search(my.server.log_path.read_text()) is None


def test_config_read_hides_password_with_at(my: MyEnv) -> None:
    password = f"{my.target.admin_password}@tail@end"
    my.target.query("ALTER USER %s@'%%' IDENTIFIED BY %s", (my.target.admin, password))
    # The password goes into the DSN unescaped, because the DSN parser
    # splits the credentials from the address at the last "@".
    address = f"@tcp(127.0.0.1:3306)/{my.target.database}"
    literal = f"{my.target.admin}:{password}{address}"
    my.write(
        "config/literal",
        {
            "plugin_name": "mysql-database-plugin",
            "connection_url": literal,
            "allowed_roles": "*",
        },
    )
    details = my.call("GET", "config/literal").json()["data"]["connection_details"]
    assert details["connection_url"] == f"{my.target.admin}:*****{address}"


def test_url_error_hides_literal_password(pg: PgEnv) -> None:
    # A malformed URL makes libpq quote it back, literal password and all.
    url = f"postgresql://{pg.target.admin}:Literal-{pg.marker}@[::1/x"
    body = {"plugin_name": "postgresql-database-plugin", "connection_url": url}
    answer = pg.call("POST", "config/literal", body)
    _assert_named_400(answer, "connection_url")
    assert f"Literal-{pg.marker}" not in answer.text
    assert "[redacted]@[::1/x" in answer.text


def test_mysql_silent_server_times_out(my: MyEnv) -> None:
    # PostgreSQL's port accepts TCP and then waits for the client to speak,
    # as the MySQL client waits for a greeting: neither side ever sends.
    silent = my.target.connection_url.replace(":3306)", ":5432)")
    started = time.monotonic()
    answer = my.call("POST", "config/silent", my.target.config(connection_url=silent))
    _assert_named_400(answer, "handshake")
    unverified = my.target.config(connection_url=silent, verify_connection=False)
    my.write("config/silent", unverified)
    role = {"db_name": "silent", "creation_statements": my.create_statements}
    my.write("roles/silent", role)
    creds = my.call("GET", "creds/silent")
    assert creds.status_code == 500
    assert "handshake" in creds.json()["errors"][0]
    assert time.monotonic() - started < 28


# -- name collisions ----------------------------------------------------------


def test_mysql_collision_keeps_live_user(my: MyEnv) -> None:
    # A template without a random part gives the second lease the first's name.
    my.write("config/my", my.target.config(username_template="{{.RoleName}}"))
    first = my.creds()
    assert first["data"]["username"] == my.role
    second = my.call("GET", f"creds/{my.role}")
    assert second.status_code == 500
    assert "1396" in second.json()["errors"][0]
    assert my.target.user_hosts(my.role) == ["%"]
    assert my.target.login(my.role, first["data"]["password"]) == [(1,)]
    assert my.lookup(first["lease_id"]).json()["data"]["state"] == "active"


def test_mysql_collision_keeps_foreign_user(my: MyEnv) -> None:
    foreign = f"f{my.marker}"
    my.target.query("CREATE USER %s@'%%' IDENTIFIED BY 'Foreign-1'", (foreign,))
    my.write("config/my", my.target.config(username_template="{{.RoleName}}"))
    role = {"db_name": "my", "creation_statements": my.create_statements}
    my.write(f"roles/{foreign}", role)
    answer = my.call("GET", f"creds/{foreign}")
    assert answer.status_code == 500
    assert my.target.user_hosts(foreign) == ["%"]
    assert my.target.login(foreign, "Foreign-1", use_schema=False) == [(1,)]
    leases = my.sys("LIST", f"sys/leases/lookup/{my.mount}/creds/{foreign}/")
    assert leases.status_code == 404


# -- renewals racing each other and revocation --------------------------------


def test_parallel_renew_one_lease(pg: PgEnv) -> None:
    lease_id = pg.creds()["lease_id"]
    body = {"lease_id": lease_id, "increment": 600}

    def renew(_: int) -> requests.Response:
        return pg.sys("PUT", "sys/leases/renew", body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(renew, range(60)))
    failures = [a.text for a in answers if a.status_code != 200]
    assert failures == []
    assert {a.json()["lease_duration"] for a in answers} <= {599, 600}


def test_renew_during_revoke_stays_revoked(pg: PgEnv) -> None:
    # A renew statement that takes a second keeps the renewal running
    # while the revocation starts.
    role = {
        "db_name": "pg",
        "creation_statements": PG_CREATE,
        "renew_statements": ["SELECT pg_sleep(1)"],
    }
    pg.write(f"roles/{pg.role}", role)
    issued = pg.creds()
    lease_id = issued["lease_id"]
    renewal: list[requests.Response] = []
    body = {"lease_id": lease_id, "increment": 600}
    worker = threading.Thread(
        target=lambda: renewal.append(pg.sys("PUT", "sys/leases/renew", body))
    )
    worker.start()
    time.sleep(0.3)
    revoked = pg.sys("PUT", "sys/leases/revoke", {"lease_id": lease_id})
    worker.join(timeout=30)
    assert revoked.status_code == 204
    assert renewal[0].status_code == 200
    assert pg.lookup(lease_id).status_code == 400
    listing = pg.sys("LIST", f"sys/leases/lookup/{pg.mount}/creds/{pg.role}/")
    assert listing.status_code == 404, listing.text
    assert not pg.target.role_exists(issued["data"]["username"])


def test_last_token_use_gets_no_secret(pg: PgEnv) -> None:
    # The token is revoked after its last use, and its leases with it, so
    # credentials returned then would already be dead.
    created = pg.sys("POST", "auth/token/create", {"num_uses": 2, "ttl": "10m"})
    token = created.json()["auth"]["client_token"]
    path = f"{pg.mount}/creds/{pg.role}"
    first = pg.server.request("GET", path, token=token)
    assert first.status_code == 200
    last = pg.server.request("GET", path, token=token)
    assert last.status_code == 400
    assert "token had one use left" in last.json()["errors"][0]
    assert pg.target.marked_roles() == []
    listing = pg.sys("LIST", f"sys/leases/lookup/{pg.mount}/creds/{pg.role}/")
    assert listing.status_code == 404


# -- root rotation racing configuration writes ----------------------------------


def test_parallel_rotate_root_keeps_access(my: MyEnv) -> None:
    # Rotations and writes that leave the password alone, all at once: the
    # stored root password must end up as the one the database has.
    def rotate(index: int) -> requests.Response:
        if index % 2:
            return my.call("POST", "config/my", {"allowed_roles": "*"})
        return my.call("POST", "rotate-root/my")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(rotate, range(16)))
    assert [a.status_code for a in answers] == [204] * 16
    issued = my.creds()
    assert my.target.login(issued["data"]["username"], issued["data"]["password"])
    assert my.target.user_hosts(my.target.admin) == ["%"]


# -- accounts the default revocation must find --------------------------------


@pytest.mark.parametrize(
    "create",
    [
        "CREATE USER '{{name}}'@localhost IDENTIFIED BY '{{password}}'",
        "CREATE USER {{name}}@localhost IDENTIFIED BY '{{password}}'",
        "CREATE USER `{{name}}`@`localhost` IDENTIFIED BY '{{password}}'",
    ],
    ids=["bare-host", "bare-both", "backticks"],
)
def test_mysql_revocation_finds_host(my: MyEnv, create: str) -> None:
    # An unquoted account name may not contain "-", so the name has none.
    template = '{{ printf "%s_%s" .RoleName (random 8) }}'
    my.write("config/my", my.target.config(username_template=template))
    my.write(f"roles/{my.role}", {"db_name": "my", "creation_statements": [create]})
    issued = my.creds()
    username = issued["data"]["username"]
    assert my.target.user_hosts(username) == ["localhost"]
    revoked = my.sys("PUT", "sys/leases/revoke", {"lease_id": issued["lease_id"]})
    assert revoked.status_code == 204
    assert my.target.user_hosts(username) == []
