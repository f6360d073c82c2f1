"""The database engine against the real MariaDB on 127.0.0.1:3306.

Each test gets its own schema, an admin login with CREATE USER and every
privilege (with grant option) on that schema only, and its own mount on a
shared dev server with a fast lease retry schedule. MariaDB checks
passwords on 127.0.0.1, so logins here prove the password too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest
from asyncmy.errors import OperationalError

from tests.dbtargets import (  # noqa: F401 - fixtures
    MySQLTarget,
    lease_server,
    mount_database,
    mysql_run,
    mysql_target,
    wait_until,
)
from tests.server import ServerProcess

CREATE = [
    "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
    "GRANT SELECT ON `{schema}`.* TO '{{name}}'@'%';",
]


@dataclass
class Env:
    server: ServerProcess
    client: hvac.Client
    mount: str
    target: MySQLTarget

    @property
    def role(self) -> str:
        return f"r{self.target.marker}"

    def statements(self) -> list[str]:
        return [s.replace("{schema}", self.target.database) for s in CREATE]

    def create_role(self, name: str | None = None, **fields) -> str:
        name = name or self.role
        body = {"db_name": "my", "creation_statements": self.statements()} | fields
        answer = self.server.request("POST", f"{self.mount}/roles/{name}", json=body)
        assert answer.status_code == 204, answer.text
        return name

    def creds(self, role: str | None = None, token: str | None = None) -> dict:
        client = self.client
        if token is not None:
            client = hvac.Client(url=self.server.url, token=token)
        return client.secrets.database.generate_credentials(
            role or self.role, mount_point=self.mount
        )

    def configure(self, **extra) -> None:
        answer = self.server.request(
            "POST", f"{self.mount}/config/my", json=self.target.config(**extra)
        )
        assert answer.status_code == 204, answer.text

    def lookup(self, lease_id: str):
        return self.server.request(
            "PUT", "sys/leases/lookup", json={"lease_id": lease_id}
        )

    def user_exists(self, name: str) -> bool:
        return bool(self.target.user_hosts(name))


@pytest.fixture
def env(lease_server: ServerProcess, mysql_target: MySQLTarget) -> Iterator[Env]:  # noqa: F811
    mysql_run(f"CREATE TABLE `{mysql_target.database}`.items (name varchar(20))")
    mysql_run(f"INSERT INTO `{mysql_target.database}`.items VALUES ('first')")
    mount = mount_database(lease_server, mysql_target.marker)
    client = hvac.Client(url=lease_server.url, token=lease_server.root_token)
    result = Env(lease_server, client, mount, mysql_target)
    result.configure()
    yield result
    lease_server.request("DELETE", f"sys/mounts/{mount}")


# -- connections --------------------------------------------------------------


def test_config_read_hides_password(env: Env) -> None:
    answer = env.client.secrets.database.read_connection("my", mount_point=env.mount)
    data = answer["data"]
    assert data["plugin_name"] == "mysql-database-plugin"
    assert data["connection_details"]["connection_url"] == env.target.connection_url
    assert env.target.admin_password not in str(answer)


def test_config_wrong_password_rejected(env: Env) -> None:
    answer = env.server.request(
        "POST",
        f"{env.mount}/config/bad",
        json=env.target.config(password="Wrong-pass-123"),
    )
    assert answer.status_code == 400
    message = answer.json()["errors"][0]
    assert "Access denied" in message
    assert "Wrong-pass-123" not in message


def test_config_password_needs_no_escaping(env: Env) -> None:
    # The operator passes the raw password; MSSM never pastes it into the DSN.
    awkward = "p@ss:w/rd?#%&'\""
    mysql_run("ALTER USER %s@'%%' IDENTIFIED BY %s", (env.target.admin, awkward))
    env.target.admin_password = awkward
    env.configure()
    env.create_role()
    assert env.creds()["data"]["username"]


def test_config_unreachable_rejected(env: Env) -> None:
    url = env.target.connection_url.replace("3306", "1")
    answer = env.server.request(
        "POST", f"{env.mount}/config/down", json=env.target.config(connection_url=url)
    )
    assert answer.status_code == 400
    assert "Can't connect" in answer.json()["errors"][0]


def test_config_tls_required_reaches_driver(env: Env) -> None:
    # The local MariaDB has TLS disabled, so requiring TLS must fail.
    url = env.target.connection_url + "?tls=true"
    answer = env.server.request(
        "POST", f"{env.mount}/config/tls", json=env.target.config(connection_url=url)
    )
    assert answer.status_code == 400
    assert "SSL" in answer.json()["errors"][0] or "TLS" in answer.json()["errors"][0]


def test_config_tls_mode_invalid(env: Env) -> None:
    url = env.target.connection_url + "?tls=sometimes"
    answer = env.server.request(
        "POST", f"{env.mount}/config/tls", json=env.target.config(connection_url=url)
    )
    assert answer.status_code == 400
    assert "tls='sometimes'" in answer.json()["errors"][0]


def test_config_tls_ca_invalid(env: Env) -> None:
    answer = env.server.request(
        "POST",
        f"{env.mount}/config/tls",
        json=env.target.config(tls_ca="not a certificate"),
    )
    assert answer.status_code == 400
    assert "tls" in answer.json()["errors"][0].lower()


# -- credentials --------------------------------------------------------------


def test_creds_log_in_with_grants(env: Env) -> None:
    env.create_role(default_ttl="1h")
    answer = env.creds()
    username = answer["data"]["username"]
    password = answer["data"]["password"]
    assert len(username) <= 32
    assert env.target.login(username, password, "SELECT name FROM items") == [
        ("first",)
    ]
    with pytest.raises(OperationalError):
        env.target.login(username, password, "INSERT INTO items VALUES ('x')")
    with pytest.raises(OperationalError, match="Access denied"):
        env.target.login(username, "wrong-password")


def test_long_display_name_keeps_random(env: Env) -> None:
    role = f"r{env.target.marker}xx"
    env.create_role(role)
    token = env.server.request(
        "POST",
        "auth/token/create",
        json={"display_name": "kubernetes-reporting-service-account"},
    )
    assert token.status_code == 200, token.text
    client_token = token.json()["auth"]["client_token"]
    first = env.creds(role, token=client_token)
    second = env.creds(role, token=client_token)
    names = [first["data"]["username"], second["data"]["username"]]
    for name in names:
        assert len(name) <= 32
        prefix, _, random_part = name.rpartition("-")
        assert prefix.startswith("v-")
        assert prefix.endswith(f"-{role}")
        assert len(random_part) >= 8
    assert names[0] != names[1]
    env.client.sys.revoke_lease(first["lease_id"])
    assert not env.user_exists(names[0])
    assert env.target.login(names[1], second["data"]["password"]) == [(1,)]


def test_legacy_plugin_short_names(env: Env) -> None:
    env.configure(plugin_name="mysql-legacy-database-plugin")
    env.create_role()
    names = [env.creds()["data"]["username"] for _ in range(2)]
    for name in names:
        assert len(name) <= 16
        assert re.fullmatch(r"v-r\w{3}-[A-Za-z0-9]{9}", name), name
    assert names[0] != names[1]


def test_template_too_long_rejected(env: Env) -> None:
    env.configure(username_template="{{.RoleName}}-{{random 30}}")
    env.create_role()
    before = env.target.marked_users()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 400
    assert "at most 32" in answer.json()["errors"][0]
    assert env.target.marked_users() == before


def test_users_at_several_hosts_dropped(env: Env) -> None:
    statements = [
        "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"
        "CREATE USER '{{name}}'@'localhost' IDENTIFIED BY '{{password}}';",
        f"GRANT SELECT ON `{env.target.database}`.* TO '{{{{name}}}}'@'%';",
    ]
    env.create_role(creation_statements=statements)
    answer = env.creds()
    username = answer["data"]["username"]
    assert env.target.user_hosts(username) == ["%", "localhost"]
    env.client.sys.revoke_lease(answer["lease_id"])
    assert env.target.user_hosts(username) == []


def test_failed_creation_leaves_nothing(env: Env) -> None:
    statements = [
        "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
        "GRANT SELECT ON no_such_db_x.no_table TO '{{name}}'@'%';",
    ]
    env.create_role(creation_statements=statements)
    before = env.target.marked_users()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 500
    assert "failed to create the database user" in answer.json()["errors"][0]
    assert env.target.marked_users() == before
    listing = env.server.request("LIST", f"sys/leases/lookup/{env.mount}/creds/")
    assert listing.status_code == 404


def test_semicolon_in_quotes_not_split(env: Env) -> None:
    mysql_run(f"CREATE TABLE `{env.target.database}`.notes (note varchar(40))")
    statements = [
        *env.statements(),
        f"INSERT INTO `{env.target.database}`.notes VALUES ('a;b');",
    ]
    env.create_role(creation_statements=statements)
    env.creds()
    assert mysql_run(f"SELECT note FROM `{env.target.database}`.notes") == [("a;b",)]


# -- leases -------------------------------------------------------------------


def test_expiry_drops_user(env: Env) -> None:
    env.create_role(default_ttl="3s")
    answer = env.creds()
    username = answer["data"]["username"]
    assert env.user_exists(username)
    assert wait_until(lambda: not env.user_exists(username), timeout=10)
    with pytest.raises(OperationalError, match="Access denied"):
        env.target.login(username, answer["data"]["password"])


def test_renewed_lease_dropped_later(env: Env) -> None:
    env.create_role(default_ttl="3s", max_ttl="20s")
    answer = env.creds()
    issued = time.time()
    username = answer["data"]["username"]
    time.sleep(1)
    renewed = env.client.sys.renew_lease(answer["lease_id"], increment=5)
    assert renewed["lease_duration"] == 5
    time.sleep(max(0.0, issued + 4.5 - time.time()))
    assert env.user_exists(username)
    assert env.target.login(username, answer["data"]["password"]) == [(1,)]
    assert wait_until(lambda: not env.user_exists(username), timeout=10)
    assert time.time() - issued >= 5.5


def test_revoke_dropped_by_hand(env: Env) -> None:
    env.create_role(
        revocation_statements=["DROP USER '{{name}}'@'%';"],
    )
    answer = env.creds()
    mysql_run("DROP USER %s@'%%'", (answer["data"]["username"],))
    revoked = env.server.request(
        "PUT", "sys/leases/revoke", json={"lease_id": answer["lease_id"]}
    )
    assert revoked.status_code == 204
    assert env.lookup(answer["lease_id"]).status_code == 400


def test_revoke_other_user_error_kept(env: Env) -> None:
    # A statement that fails on another name must not count as revoked.
    env.create_role(revocation_statements=["DROP USER '{{name}}_missing'@'%';"])
    answer = env.creds()
    revoked = env.server.request(
        "PUT", "sys/leases/revoke", json={"lease_id": answer["lease_id"]}
    )
    assert revoked.status_code == 400
    assert "1396" in revoked.json()["errors"][0]
    assert env.user_exists(answer["data"]["username"])
    assert env.lookup(answer["lease_id"]).json()["data"]["state"] != "active"
    env.server.request("PUT", f"sys/leases/revoke-force/{env.mount}/creds/{env.role}")
    mysql_run("DROP USER IF EXISTS %s@'%%'", (answer["data"]["username"],))


def test_token_revocation_drops_users(env: Env) -> None:
    env.create_role()
    token = env.server.request("POST", "auth/token/create", json={"ttl": "10m"})
    assert token.status_code == 200, token.text
    client_token = token.json()["auth"]["client_token"]
    names = [env.creds(token=client_token)["data"]["username"] for _ in range(2)]
    revoked = env.server.request(
        "POST", "auth/token/revoke", json={"token": client_token}
    )
    assert revoked.status_code == 204
    assert wait_until(lambda: not any(env.user_exists(n) for n in names), timeout=10)


# -- root and static credentials ----------------------------------------------


def test_rotate_root_on_test_admin(env: Env) -> None:
    old = env.target.admin_password
    env.client.secrets.database.rotate_root_credentials("my", mount_point=env.mount)
    with pytest.raises(OperationalError, match="Access denied"):
        env.target.login(env.target.admin, old)
    env.create_role()
    answer = env.creds()
    assert env.target.login(answer["data"]["username"], answer["data"]["password"])


def test_static_role_rotation(env: Env) -> None:
    account = f"svc_{env.target.marker}"
    mysql_run("CREATE USER %s@'%%' IDENTIFIED BY 'Init1al!'", (account,))
    database = env.client.secrets.database
    database.create_static_role(
        env.role, "my", account, [], rotation_period="1h", mount_point=env.mount
    )
    first = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert env.target.login(account, first["password"], use_schema=False) == [(1,)]
    with pytest.raises(OperationalError, match="Access denied"):
        env.target.login(account, "Init1al!", use_schema=False)
    database.rotate_static_role_credentials(env.role, mount_point=env.mount)
    second = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert second["password"] != first["password"]
    assert env.target.login(account, second["password"], use_schema=False) == [(1,)]
    with pytest.raises(OperationalError, match="Access denied"):
        env.target.login(account, first["password"], use_schema=False)
    database.delete_static_role(env.role, mount_point=env.mount)
    assert env.user_exists(account)
