"""The database engine against the real PostgreSQL on 127.0.0.1:5432.

Each test gets its own database, a CREATEROLE admin login (not a superuser)
and its own mount on a shared dev server with a fast lease retry schedule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import hvac
import psycopg
import pytest
from hvac.exceptions import InternalServerError, InvalidRequest

from tests.dbtargets import (  # noqa: F401 - fixtures
    PostgresTarget,
    lease_server,
    mount_database,
    pg_target,
    wait_until,
)
from tests.server import ServerProcess

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
]
CREATE_WITH_GRANTS = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
    'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{{name}}";',
    'GRANT CREATE ON SCHEMA public TO "{{name}}";',
    'GRANT USAGE ON SCHEMA reports TO "{{name}}";',
    'GRANT SELECT ON ALL TABLES IN SCHEMA reports TO "{{name}}";',
]


@dataclass
class Env:
    server: ServerProcess
    client: hvac.Client
    mount: str
    target: PostgresTarget

    @property
    def role(self) -> str:
        return f"r{self.target.marker}"

    def create_role(self, name: str | None = None, **fields) -> str:
        name = name or self.role
        body = {"db_name": "pg", "creation_statements": CREATE} | fields
        answer = self.server.request("POST", f"{self.mount}/roles/{name}", json=body)
        assert answer.status_code == 204, answer.text
        return name

    def creds(self, role: str | None = None) -> dict:
        return self.client.secrets.database.generate_credentials(
            role or self.role, mount_point=self.mount
        )

    def lookup(self, lease_id: str):
        return self.server.request(
            "PUT", "sys/leases/lookup", json={"lease_id": lease_id}
        )


@pytest.fixture
def env(lease_server: ServerProcess, pg_target: PostgresTarget) -> Iterator[Env]:  # noqa: F811
    with pg_target.superuser() as conn:
        conn.execute("CREATE SCHEMA reports")
        conn.execute(f'ALTER SCHEMA reports OWNER TO "{pg_target.admin}"')
        conn.execute("CREATE TABLE public.items (id serial PRIMARY KEY, name text)")
        conn.execute(f'ALTER TABLE public.items OWNER TO "{pg_target.admin}"')
        conn.execute("INSERT INTO public.items (name) VALUES ('first')")
        conn.execute("CREATE TABLE reports.daily (day date)")
        conn.execute(f'ALTER TABLE reports.daily OWNER TO "{pg_target.admin}"')
    mount = mount_database(lease_server, pg_target.marker)
    client = hvac.Client(url=lease_server.url, token=lease_server.root_token)
    answer = lease_server.request("POST", f"{mount}/config/pg", json=pg_target.config())
    assert answer.status_code == 204, answer.text
    yield Env(lease_server, client, mount, pg_target)
    lease_server.request("DELETE", f"sys/mounts/{mount}")


def _timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- connections --------------------------------------------------------------


def test_config_read_hides_password(env: Env) -> None:
    answer = env.client.secrets.database.read_connection("pg", mount_point=env.mount)
    data = answer["data"]
    assert data["plugin_name"] == "postgresql-database-plugin"
    assert data["connection_details"]["username"] == env.target.admin
    assert data["connection_details"]["connection_url"] == env.target.connection_url
    assert env.target.admin_password not in str(answer)
    assert data["allowed_roles"] == ["*"]


def test_config_unreachable_rejected(env: Env) -> None:
    body = env.target.config(
        connection_url=env.target.connection_url.replace(":5432/", ":1/")
    )
    answer = env.server.request("POST", f"{env.mount}/config/down", json=body)
    assert answer.status_code == 400
    message = answer.json()["errors"][0]
    assert "error verifying connection" in message
    assert "Connection refused" in message or "connection" in message.lower()
    assert env.target.admin_password not in message


def test_config_unknown_login_rejected(env: Env) -> None:
    body = env.target.config(username="no_such_login_x", password="Pw-secret-123")
    answer = env.server.request("POST", f"{env.mount}/config/bad", json=body)
    assert answer.status_code == 400
    message = answer.json()["errors"][0]
    assert 'role "no_such_login_x" does not exist' in message
    assert "Pw-secret-123" not in message


def test_config_without_verify_accepted(env: Env) -> None:
    body = env.target.config(
        connection_url=env.target.connection_url.replace(":5432/", ":1/"),
        verify_connection=False,
    )
    answer = env.server.request("POST", f"{env.mount}/config/later", json=body)
    assert answer.status_code == 204


@pytest.mark.parametrize(
    "options", ["sslmode=require", "sslmode=verify-full&sslrootcert=/tmp/none.pem"]
)
def test_config_sslmode_reaches_libpq(env: Env, options: str) -> None:
    # The local server has SSL off, so requiring it must fail with libpq's
    # own reason: proof that the URL's sslmode reaches the driver.
    url = env.target.connection_url.replace("sslmode=disable", options)
    answer = env.server.request(
        "POST", f"{env.mount}/config/tls", json=env.target.config(connection_url=url)
    )
    assert answer.status_code == 400
    assert "server does not support SSL" in answer.json()["errors"][0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"plugin_name": "nope-database-plugin"}, "invalid plugin_name"),
        ({"plugin_name": None}, "plugin_name"),
        ({"connection_url": "host=127.0.0.1 user"}, "invalid connection_url"),
        ({"max_open_connections": 0}, "max_open_connections"),
        ({"username_template": "{{ nosuch 3 }}"}, "'nosuch'"),
        ({"password_policy": "no-such-policy"}, "no-such-policy"),
    ],
)
def test_config_invalid_fields(env: Env, body: dict, fragment: str) -> None:
    config = {k: v for k, v in (env.target.config() | body).items() if v is not None}
    answer = env.server.request("POST", f"{env.mount}/config/x", json=config)
    assert answer.status_code == 400
    assert fragment in answer.json()["errors"][0]


def test_config_list_and_delete(env: Env) -> None:
    listed = env.client.secrets.database.list_connections(mount_point=env.mount)
    assert listed["data"]["keys"] == ["pg"]
    env.client.secrets.database.delete_connection("pg", mount_point=env.mount)
    answer = env.server.request("GET", f"{env.mount}/config/pg")
    assert answer.status_code == 404


# -- roles --------------------------------------------------------------------


def test_role_crud_with_hvac(env: Env) -> None:
    database = env.client.secrets.database
    database.create_role(
        env.role,
        "pg",
        CREATE,
        default_ttl="1h",
        max_ttl="2h",
        revocation_statements=['DROP ROLE "{{name}}";'],
        mount_point=env.mount,
    )
    data = database.read_role(env.role, mount_point=env.mount)["data"]
    assert data["creation_statements"] == CREATE
    assert data["revocation_statements"] == ['DROP ROLE "{{name}}";']
    assert data["default_ttl"] == 3600
    assert data["max_ttl"] == 7200
    assert data["credential_type"] == "password"
    assert database.list_roles(mount_point=env.mount)["data"]["keys"] == [env.role]
    database.delete_role(env.role, mount_point=env.mount)
    answer = env.server.request("GET", f"{env.mount}/roles/{env.role}")
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1h30m", 5400), ("90m", 5400), (5400, 5400), ("5400", 5400), ("1.5h", 5400)]
    + [("1d", 86400)],
)
def test_role_ttl_formats_accepted(env: Env, value, seconds: int) -> None:
    env.create_role(default_ttl=value, max_ttl="48h")
    data = env.client.secrets.database.read_role(env.role, mount_point=env.mount)
    assert data["data"]["default_ttl"] == seconds
    assert data["data"]["max_ttl"] == 172800


@pytest.mark.parametrize("value", ["2w", "1 hour", "-10m", "abc"])
def test_role_ttl_invalid_named(env: Env, value: str) -> None:
    body = {"db_name": "pg", "creation_statements": CREATE, "default_ttl": value}
    answer = env.server.request("POST", f"{env.mount}/roles/{env.role}", json=body)
    assert answer.status_code == 400
    message = answer.json()["errors"][0]
    assert "default_ttl" in message
    assert repr(value) in message or value in message


def test_role_default_above_max_rejected(env: Env) -> None:
    body = {
        "db_name": "pg",
        "creation_statements": CREATE,
        "default_ttl": "3h",
        "max_ttl": "2h",
    }
    answer = env.server.request("POST", f"{env.mount}/roles/{env.role}", json=body)
    assert answer.status_code == 400
    assert "default_ttl" in answer.json()["errors"][0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"creation_statements": CREATE}, "db_name"),
        ({"db_name": "pg"}, "creation_statements"),
        (
            {"db_name": "pg", "creation_statements": CREATE, "credential_type": "rsa"},
            "rsa",
        ),
        ({"db_name": "pg", "creation_statements": [1, 2]}, "creation_statements"),
    ],
)
def test_role_invalid_fields(env: Env, body: dict, fragment: str) -> None:
    answer = env.server.request("POST", f"{env.mount}/roles/{env.role}", json=body)
    assert answer.status_code == 400
    assert fragment in answer.json()["errors"][0]


# -- credentials --------------------------------------------------------------


def test_creds_log_in_and_read(env: Env) -> None:
    env.create_role(default_ttl="1h", max_ttl="2h")
    started = time.time()
    answer = env.creds()
    username = answer["data"]["username"]
    password = answer["data"]["password"]
    assert answer["lease_id"].startswith(f"{env.mount}/creds/{env.role}/")
    assert answer["lease_duration"] == 3600
    assert answer["renewable"] is True
    assert username.startswith(f"v-root-{env.role}-")
    assert len(username.encode()) <= 63
    assert len(password) >= 20
    assert env.target.password_matches(username, password)
    with env.target.login(username, password) as conn:
        rows = conn.execute("SELECT name FROM public.items").fetchall()
        assert rows == [("first",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO public.items (name) VALUES ('no')")
    valid_until = env.target.query(
        "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [username]
    )[0][0]
    assert abs(valid_until.timestamp() - (started + 3600)) < 5


def test_creds_distinct_users(env: Env) -> None:
    env.create_role()
    first = env.creds()["data"]
    second = env.creds()["data"]
    assert first["username"] != second["username"]
    assert first["password"] != second["password"]


def test_creds_unknown_role_rejected(env: Env) -> None:
    answer = env.server.request("GET", f"{env.mount}/creds/nosuch")
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["unknown role: nosuch"]


def test_creds_role_not_allowed(env: Env) -> None:
    body = env.target.config(allowed_roles=["other-*"])
    env.server.request("POST", f"{env.mount}/config/pg", json=body)
    env.create_role()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 500
    assert "is not an allowed role" in answer.json()["errors"][0]


def test_creds_allowed_role_glob(env: Env) -> None:
    body = env.target.config(allowed_roles=f"other,r{env.target.marker[:3]}*")
    env.server.request("POST", f"{env.mount}/config/pg", json=body)
    env.create_role()
    assert env.creds()["data"]["username"]


def test_creds_failed_statement_rolls_back(env: Env) -> None:
    statements = [CREATE[0], 'GRANT SELECT ON no_such_table TO "{{name}}";']
    env.create_role(creation_statements=statements)
    before = env.target.marked_roles()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 500
    assert 'relation "no_such_table" does not exist' in answer.json()["errors"][0]
    assert env.target.marked_roles() == before
    listing = env.server.request("LIST", f"sys/leases/lookup/{env.mount}/creds/")
    assert listing.status_code == 404


def test_creds_rollback_statements_run(env: Env) -> None:
    with env.target.superuser() as conn:
        conn.execute("CREATE TABLE public.audit_rollbacks (name text)")
        conn.execute(
            f'ALTER TABLE public.audit_rollbacks OWNER TO "{env.target.admin}"'
        )
    statements = [CREATE[0], "SELECT 1/0;"]
    rollback = ["INSERT INTO public.audit_rollbacks VALUES ('{{name}}');"]
    env.create_role(creation_statements=statements, rollback_statements=rollback)
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 500
    rows = env.target.query("SELECT name FROM public.audit_rollbacks")
    assert len(rows) == 1
    assert rows[0][0].startswith(f"v-root-{env.role}-")
    assert not env.target.role_exists(rows[0][0])


def test_creds_password_policy(env: Env) -> None:
    policy = (
        'length = 32\nrule "charset" {\n  charset = "abcdef"\n  min-chars = 30\n}\n'
        'rule "charset" {\n  charset = "!#%"\n  min-chars = 2\n}\n'
    )
    name = f"pp-{env.target.marker}"
    answer = env.server.request(
        "PUT", f"sys/policies/password/{name}", json={"policy": policy}
    )
    assert answer.status_code == 204
    body = env.target.config(password_policy=name)
    env.server.request("POST", f"{env.mount}/config/pg", json=body)
    env.create_role()
    password = env.creds()["data"]["password"]
    assert len(password) == 32
    assert sum(c in "abcdef" for c in password) >= 30
    assert sum(c in "!#%" for c in password) == 2
    env.server.request("DELETE", f"sys/policies/password/{name}")


def test_creds_policy_with_quote_rejected(env: Env) -> None:
    policy = 'length = 8\nrule "charset" {\n  charset = "\'"\n  min-chars = 1\n}\n'
    name = f"pq-{env.target.marker}"
    env.server.request("PUT", f"sys/policies/password/{name}", json={"policy": policy})
    body = env.target.config(password_policy=name)
    assert env.server.request("POST", f"{env.mount}/config/pg", json=body).ok
    env.create_role()
    before = env.target.marked_roles()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 400
    assert "not allowed in database passwords" in answer.json()["errors"][0]
    assert env.target.marked_roles() == before
    env.server.request("DELETE", f"sys/policies/password/{name}")


@pytest.mark.parametrize(
    "template",
    [
        '{{.RoleName}}"; DROP ROLE postgres; --',
        "{{.RoleName}}'x",
        "{{.RoleName}}\\x",
        "{{.RoleName}}é",
        "{{.RoleName}} x",
    ],
)
def test_creds_unsafe_template_rejected(env: Env, template: str) -> None:
    body = env.target.config(username_template=template)
    assert env.server.request("POST", f"{env.mount}/config/pg", json=body).ok
    env.create_role()
    before = env.target.marked_roles()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 400
    assert "outside letters, digits" in answer.json()["errors"][0]
    assert env.target.marked_roles() == before
    assert env.target.role_exists("postgres")


def test_creds_template_too_long_rejected(env: Env) -> None:
    body = env.target.config(username_template="{{.RoleName}}-{{random 60}}")
    env.server.request("POST", f"{env.mount}/config/pg", json=body)
    env.create_role()
    answer = env.server.request("GET", f"{env.mount}/creds/{env.role}")
    assert answer.status_code == 400
    assert "69-character name" in answer.json()["errors"][0]
    assert "at most 63" in answer.json()["errors"][0]


def test_creds_custom_template_used(env: Env) -> None:
    template = '{{ printf "app_%s_%s" (.RoleName | uppercase) (random 6) }}'
    body = env.target.config(username_template=template)
    env.server.request("POST", f"{env.mount}/config/pg", json=body)
    env.create_role()
    username = env.creds()["data"]["username"]
    assert username.startswith(f"app_R{env.target.marker.upper()}_")
    assert len(username) == len(f"app_r{env.target.marker}_") + 6
    assert env.target.role_exists(username)


# -- leases -------------------------------------------------------------------


def test_revoke_drops_user_at_once(env: Env) -> None:
    env.create_role()
    answer = env.creds()
    username = answer["data"]["username"]
    assert env.target.role_exists(username)
    env.client.sys.revoke_lease(answer["lease_id"])
    assert not env.target.role_exists(username)
    assert env.lookup(answer["lease_id"]).status_code == 400


def test_expiry_drops_user(env: Env) -> None:
    env.create_role(default_ttl="3s", max_ttl="10s")
    answer = env.creds()
    username = answer["data"]["username"]
    assert answer["lease_duration"] == 3
    assert env.target.role_exists(username)
    assert wait_until(lambda: not env.target.role_exists(username), timeout=10)
    assert env.lookup(answer["lease_id"]).json() == {"errors": ["invalid lease"]}


def test_renew_moves_expiry(env: Env) -> None:
    # The renewal scenario on a shorter clock: TTL 3 s, max TTL 9 s.
    env.create_role(default_ttl="3s", max_ttl="9s")
    answer = env.creds()
    issued = time.time()
    lease_id = answer["lease_id"]
    username = answer["data"]["username"]
    password = answer["data"]["password"]
    time.sleep(1)
    renewed = env.client.sys.renew_lease(lease_id, increment=5)
    assert renewed["lease_duration"] == 5
    assert renewed["lease_id"] == lease_id
    assert not renewed["warnings"]
    lookup = env.lookup(lease_id).json()["data"]
    assert abs(_timestamp(lookup["expire_time"]) - (issued + 6)) < 1.5
    assert lookup["last_renewal"] is not None
    valid_until = env.target.query(
        "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [username]
    )[0][0]
    assert abs(valid_until.timestamp() - (issued + 6)) < 2
    time.sleep(3)
    # Past the first TTL: still there, because the renewal moved the expiry.
    assert env.target.role_exists(username)
    env.target.login(username, password).close()
    capped = env.client.sys.renew_lease(lease_id, increment=300)
    assert 3 <= capped["lease_duration"] <= 5
    assert "capped" in capped["warnings"][0]
    assert "max_ttl" in capped["warnings"][0]
    assert wait_until(lambda: not env.target.role_exists(username), timeout=10)
    # The capped TTL is whole seconds rounded down, as Vault's is.
    assert time.time() - issued >= 7.5
    assert env.lookup(lease_id).status_code == 400


def test_renew_unknown_lease(env: Env) -> None:
    answer = env.server.request(
        "PUT", "sys/leases/renew", json={"lease_id": f"{env.mount}/creds/x/nope"}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["lease not found"]


def test_renew_increment_duration_string(env: Env) -> None:
    env.create_role(default_ttl="1h", max_ttl="3h")
    lease_id = env.creds()["lease_id"]
    answer = env.server.request(
        "PUT", "sys/leases/renew", json={"lease_id": lease_id, "increment": "1h30m"}
    )
    assert answer.status_code == 200
    assert answer.json()["lease_duration"] == 5400


def test_default_revocation_with_objects(env: Env) -> None:
    env.create_role(creation_statements=CREATE_WITH_GRANTS)
    answer = env.creds()
    username = answer["data"]["username"]
    with env.target.login(username, answer["data"]["password"]) as conn:
        conn.execute("CREATE TABLE public.owned_by_dyn (id int)")
        conn.execute("INSERT INTO public.items (name) VALUES ('by dyn')")
        conn.execute("SELECT * FROM reports.daily")
    env.client.sys.revoke_lease(answer["lease_id"])
    assert not env.target.role_exists(username)
    owner = env.target.query(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_dyn'"
    )
    assert owner == [(env.target.admin,)]


def test_default_revocation_ends_sessions(env: Env) -> None:
    env.create_role()
    answer = env.creds()
    username = answer["data"]["username"]
    conn = env.target.login(username, answer["data"]["password"])
    try:
        env.client.sys.revoke_lease(answer["lease_id"])
        assert not env.target.role_exists(username)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()


def test_custom_revocation_reassigns(env: Env) -> None:
    app_owner = f"app_owner_{env.target.marker}"
    with env.target.superuser() as conn:
        conn.execute(f'CREATE ROLE "{app_owner}"')
        conn.execute(f'GRANT "{app_owner}" TO "{env.target.admin}"')
    revocation = [
        'GRANT "{{name}}" TO CURRENT_USER;',
        f'REASSIGN OWNED BY "{{{{name}}}}" TO "{app_owner}";',
        'DROP OWNED BY "{{name}}";',
        'DROP ROLE "{{name}}";',
    ]
    env.create_role(
        creation_statements=CREATE_WITH_GRANTS, revocation_statements=revocation
    )
    answer = env.creds()
    username = answer["data"]["username"]
    with env.target.login(username, answer["data"]["password"]) as conn:
        conn.execute("CREATE TABLE public.owned_by_dyn (id int)")
    env.client.sys.revoke_lease(answer["lease_id"])
    assert not env.target.role_exists(username)
    owner = env.target.query(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_dyn'"
    )
    assert owner == [(app_owner,)]
    assert env.lookup(answer["lease_id"]).status_code == 400


def test_failed_revocation_keeps_lease(env: Env) -> None:
    env.create_role(
        creation_statements=CREATE_WITH_GRANTS,
        revocation_statements=['DROP ROLE "{{name}}";'],
    )
    answer = env.creds()
    username = answer["data"]["username"]
    password = answer["data"]["password"]
    with env.target.login(username, password) as conn:
        conn.execute("CREATE TABLE public.owned_by_dyn (id int)")
    revoked = env.server.request(
        "PUT", "sys/leases/revoke", json={"lease_id": answer["lease_id"]}
    )
    assert revoked.status_code == 400
    message = revoked.json()["errors"][0]
    assert "cannot be dropped because some objects depend on it" in message
    assert password not in message
    assert env.target.admin_password not in message
    lookup = env.lookup(answer["lease_id"])
    assert lookup.status_code == 200
    assert lookup.json()["data"]["state"] in ("revoke_pending", "irrevocable")
    assert lookup.json()["data"]["ttl"] == 0
    assert env.target.role_exists(username)
    # Fixing the role's statements lets the next retry succeed.
    env.create_role(creation_statements=CREATE_WITH_GRANTS, revocation_statements=[])
    assert wait_until(lambda: not env.target.role_exists(username), timeout=10)
    assert wait_until(lambda: env.lookup(answer["lease_id"]).status_code == 400, 5)


def test_role_deleted_leases_still_revoked(env: Env) -> None:
    env.create_role(default_ttl="3s")
    first = env.creds()
    second = env.creds()
    env.client.secrets.database.delete_role(env.role, mount_point=env.mount)
    names = [first["data"]["username"], second["data"]["username"]]
    assert wait_until(
        lambda: not any(env.target.role_exists(n) for n in names), timeout=10
    )
    assert env.lookup(first["lease_id"]).status_code == 400
    assert env.lookup(second["lease_id"]).status_code == 400


def test_user_dropped_by_hand_counts_revoked(env: Env) -> None:
    env.create_role(revocation_statements=['DROP ROLE "{{name}}";'])
    answer = env.creds()
    with env.target.superuser() as conn:
        conn.execute(f'DROP OWNED BY "{answer["data"]["username"]}"')
        conn.execute(f'DROP ROLE "{answer["data"]["username"]}"')
    revoked = env.server.request(
        "PUT", "sys/leases/revoke", json={"lease_id": answer["lease_id"]}
    )
    assert revoked.status_code == 204
    assert env.lookup(answer["lease_id"]).status_code == 400


def test_unmount_revokes_leases(env: Env) -> None:
    env.create_role()
    answer = env.creds()
    username = answer["data"]["username"]
    deleted = env.server.request("DELETE", f"sys/mounts/{env.mount}")
    assert deleted.status_code == 204
    assert not env.target.role_exists(username)
    assert env.server.request("GET", "sys/health").status_code == 200


def test_revoke_prefix_revokes_all(env: Env) -> None:
    env.create_role()
    names = [env.creds()["data"]["username"] for _ in range(3)]
    env.client.sys.revoke_prefix(f"{env.mount}/creds/{env.role}")
    assert not any(env.target.role_exists(name) for name in names)


# -- root and static credentials ----------------------------------------------


def test_rotate_root_on_test_admin(env: Env) -> None:
    assert env.target.password_matches(env.target.admin, env.target.admin_password)
    env.client.secrets.database.rotate_root_credentials("pg", mount_point=env.mount)
    assert not env.target.password_matches(env.target.admin, env.target.admin_password)
    read = env.client.secrets.database.read_connection("pg", mount_point=env.mount)
    assert "password" not in read["data"]["connection_details"]
    env.create_role()
    username = env.creds()["data"]["username"]
    assert env.target.role_exists(username)


def test_static_role_rotation(env: Env) -> None:
    account = f"svc_{env.target.marker}"
    with env.target.superuser() as conn:
        conn.execute(f"CREATE ROLE \"{account}\" LOGIN PASSWORD 'Init1al!'")
    database = env.client.secrets.database
    database.create_static_role(
        env.role,
        "pg",
        account,
        ["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'"],
        rotation_period="5s",
        mount_point=env.mount,
    )
    first = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert first["username"] == account
    assert first["password"] != "Init1al!"
    assert not env.target.password_matches(account, "Init1al!")
    assert env.target.password_matches(account, first["password"])
    assert first["last_vault_rotation"]
    assert 0 < first["ttl"] <= 5
    assert first["rotation_period"] == 5
    assert wait_until(
        lambda: (
            database.get_static_credentials(env.role, mount_point=env.mount)["data"][
                "password"
            ]
            != first["password"]
        ),
        timeout=10,
    )
    second = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert _timestamp(second["last_vault_rotation"]) > _timestamp(
        first["last_vault_rotation"]
    )
    assert 0 < second["ttl"] <= 5
    assert env.target.password_matches(account, second["password"])
    assert not env.target.password_matches(account, first["password"])
    database.rotate_static_role_credentials(env.role, mount_point=env.mount)
    third = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert third["password"] != second["password"]
    assert env.target.password_matches(account, third["password"])
    database.delete_static_role(env.role, mount_point=env.mount)
    assert env.target.role_exists(account)


def test_static_role_database_down(env: Env) -> None:
    account = f"svc_{env.target.marker}"
    with env.target.superuser() as conn:
        conn.execute(f"CREATE ROLE \"{account}\" LOGIN PASSWORD 'Init1al!'")
    database = env.client.secrets.database
    database.create_static_role(
        env.role, "pg", account, [], rotation_period="5s", mount_point=env.mount
    )
    applied = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    down = env.target.config(
        connection_url=env.target.connection_url.replace(":5432/", ":1/"),
        verify_connection=False,
    )
    env.server.request("POST", f"{env.mount}/config/pg", json=down)
    with pytest.raises(InternalServerError):
        database.rotate_static_role_credentials(env.role, mount_point=env.mount)
    time.sleep(6)
    during = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert during["password"] == applied["password"]
    assert env.target.password_matches(account, during["password"])
    env.server.request("POST", f"{env.mount}/config/pg", json=env.target.config())
    assert wait_until(
        lambda: (
            database.get_static_credentials(env.role, mount_point=env.mount)["data"][
                "password"
            ]
            != applied["password"]
        ),
        timeout=15,
    )
    after = database.get_static_credentials(env.role, mount_point=env.mount)["data"]
    assert env.target.password_matches(account, after["password"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"db_name": "pg", "username": "x"}, "rotation_period is required"),
        ({"db_name": "pg", "rotation_period": "1h"}, "username is a required"),
        ({"db_name": "pg", "username": "x", "rotation_period": 2}, "5 seconds or more"),
        (
            {"db_name": "pg", "username": 'x"y', "rotation_period": 60},
            "invalid username",
        ),
    ],
)
def test_static_role_invalid_fields(env: Env, body: dict, fragment: str) -> None:
    answer = env.server.request(
        "POST", f"{env.mount}/static-roles/{env.role}", json=body
    )
    assert answer.status_code == 400
    assert fragment in answer.json()["errors"][0]


def test_static_role_missing_user_fails(env: Env) -> None:
    body = {"db_name": "pg", "username": f"nouser_{env.target.marker}"}
    body["rotation_period"] = "1h"
    answer = env.server.request(
        "POST", f"{env.mount}/static-roles/{env.role}", json=body
    )
    assert answer.status_code == 500
    assert "does not exist" in answer.json()["errors"][0]
    missing = env.server.request("GET", f"{env.mount}/static-roles/{env.role}")
    assert missing.status_code == 404


def test_rotate_unknown_static_role(env: Env) -> None:
    with pytest.raises(InvalidRequest, match="no static role found"):
        env.client.secrets.database.rotate_static_role_credentials(
            "nosuch", mount_point=env.mount
        )
