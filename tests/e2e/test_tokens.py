"""The token store through a running server: hvac's token calls, the token
tree and its revocation, TTLs, use limits and expiry across a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from tests.dbtargets import (  # noqa: F401 - pg_target is a fixture
    PostgresTarget,
    fast_retry_env,
    pg_target,
    wait_until,
)
from tests.server import ServerProcess, start_production

TOKEN_FORMAT = re.compile(r"hvs\.[A-Za-z0-9]{24}")
APP_POLICY = """
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "auth/token/create" {
  capabilities = ["update"]
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_production(Path(tmp_path_factory.mktemp("tokens")))
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def root(server: ServerProcess) -> hvac.Client:
    return hvac.Client(url=server.url, token=server.root_token)


def as_token(server: ServerProcess, token: str) -> hvac.Client:
    return hvac.Client(url=server.url, token=token)


def create(root: hvac.Client, **kwargs) -> dict:  # noqa: ANN003
    return root.auth.token.create(**kwargs)["auth"]


# -- hvac calls --------------------------------------------------------------


def test_create_returns_service_token(root: hvac.Client) -> None:
    auth = create(
        root, policies=["default"], ttl="1h", meta={"app": "web"}, display_name="web"
    )
    assert TOKEN_FORMAT.fullmatch(auth["client_token"])
    assert len(auth["accessor"]) == 24
    assert auth["policies"] == ["default"]
    assert auth["token_policies"] == ["default"]
    assert auth["metadata"] == {"app": "web"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert auth["orphan"] is False
    assert auth["token_type"] == "service"


def test_lookup_matches_create(root: hvac.Client) -> None:
    auth = create(root, policies=["default"], ttl="1h", display_name="web")
    data = root.auth.token.lookup(auth["client_token"])["data"]
    assert data["id"] == auth["client_token"]
    assert data["accessor"] == auth["accessor"]
    assert data["display_name"] == "token-web"
    assert data["policies"] == ["default"]
    assert data["creation_ttl"] == 3600
    assert 3590 <= data["ttl"] <= 3600
    assert data["expire_time"].endswith("Z")
    assert data["path"] == "auth/token/create"
    assert data["orphan"] is False


def test_lookup_self_of_root(root: hvac.Client, server: ServerProcess) -> None:
    data = root.auth.token.lookup_self()["data"]
    assert data["id"] == server.root_token
    assert data["policies"] == ["root"]
    assert data["expire_time"] is None
    assert data["ttl"] == 0


def test_lookup_accessor_hides_id(root: hvac.Client) -> None:
    auth = create(root, policies=["default"])
    data = root.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert data["id"] == ""
    assert data["accessor"] == auth["accessor"]


def test_renew_grants_increment(root: hvac.Client) -> None:
    auth = create(root, policies=["default"], ttl="1h")
    renewed = root.auth.token.renew(auth["client_token"], increment="30m")["auth"]
    assert renewed["lease_duration"] == 1800
    data = root.auth.token.lookup(auth["client_token"])["data"]
    assert 1790 <= data["ttl"] <= 1800
    assert "last_renewal_time" in data


def test_revoke_makes_token_unusable(root: hvac.Client, server: ServerProcess) -> None:
    auth = create(root, policies=["default"])
    root.auth.token.revoke(auth["client_token"])
    with pytest.raises(Forbidden):
        root.auth.token.lookup(auth["client_token"])
    with pytest.raises(Forbidden):
        as_token(server, auth["client_token"]).auth.token.lookup_self()


def test_revoke_accessor(root: hvac.Client, server: ServerProcess) -> None:
    auth = create(root, policies=["default"])
    root.auth.token.revoke_accessor(auth["accessor"])
    with pytest.raises(Forbidden):
        as_token(server, auth["client_token"]).auth.token.lookup_self()


def test_list_accessors(root: hvac.Client) -> None:
    auth = create(root, policies=["default"])
    keys = root.auth.token.list_accessors()["data"]["keys"]
    assert auth["accessor"] in keys


def test_accessors_need_sudo(root: hvac.Client, server: ServerProcess) -> None:
    token = create(root, policies=["default"])["client_token"]
    answer = server.request("LIST", "auth/token/accessors", token=token)
    assert answer.status_code == 403


def test_unknown_token_lookup_is_403(server: ServerProcess) -> None:
    answer = server.request("POST", "auth/token/lookup", json={"token": "hvs.nope"})
    assert answer.status_code == 403
    assert answer.json()["errors"] == ["bad token"]


def test_ttl_string_parsed(server: ServerProcess) -> None:
    answer = server.request("POST", "auth/token/create", json={"ttl": "1h30m"})
    assert answer.json()["auth"]["lease_duration"] == 5400


def test_invalid_ttl_names_field(server: ServerProcess) -> None:
    answer = server.request("POST", "auth/token/create", json={"ttl": "2w"})
    assert answer.status_code == 400
    assert "ttl" in answer.json()["errors"][0]
    assert "2w" in answer.json()["errors"][0]


def test_renew_self_without_body(root: hvac.Client, server: ServerProcess) -> None:
    token = create(root, policies=["default"], ttl="1h")["client_token"]
    answer = server.request("POST", "auth/token/renew-self", token=token)
    assert answer.status_code == 200
    assert answer.json()["auth"]["lease_duration"] == 3600


def test_custom_token_id_rejected(server: ServerProcess) -> None:
    answer = server.request("POST", "auth/token/create", json={"id": "short"})
    assert answer.status_code == 400
    assert "'id'" in answer.json()["errors"][0]


# -- policies and the token tree ---------------------------------------------


def test_scoped_token_reads_only_its_paths(
    root: hvac.Client, server: ServerProcess
) -> None:
    root.sys.create_or_update_acl_policy("app-read", APP_POLICY)
    root.secrets.kv.v2.create_or_update_secret("app/db", {"password": "pw-1"})
    root.secrets.kv.v2.create_or_update_secret("other", {"password": "pw-2"})
    token = create(root, policies=["app-read"])["client_token"]
    child = as_token(server, token).auth.token.create(policies=["app-read"])["auth"]

    read = server.request("GET", "secret/data/app/db", token=token)
    assert read.status_code == 200
    assert read.json()["data"]["data"] == {"password": "pw-1"}
    write = server.request(
        "POST", "secret/data/app/db", token=token, json={"data": {"password": "x"}}
    )
    assert write.status_code == 403
    assert server.request("GET", "secret/data/other", token=token).status_code == 403

    root.auth.token.revoke(token)
    for path in ("secret/data/app/db", "secret/data/other", "auth/token/lookup-self"):
        assert server.request("GET", path, token=token).status_code == 403
    child_read = server.request(
        "GET", "secret/data/app/db", token=child["client_token"]
    )
    assert child_read.status_code == 403


def test_child_cannot_gain_policy(root: hvac.Client, server: ServerProcess) -> None:
    root.sys.create_or_update_acl_policy("app-read", APP_POLICY)
    token = create(root, policies=["app-read"])["client_token"]
    answer = server.request(
        "POST", "auth/token/create", token=token, json={"policies": ["admin"]}
    )
    assert answer.status_code == 400
    assert "admin" in answer.json()["errors"][0]
    answer = server.request(
        "POST", "auth/token/create", token=token, json={"policies": ["root"]}
    )
    assert answer.status_code == 400


def test_missing_policy_warning(server: ServerProcess) -> None:
    body = {"policies": ["no-such-policy"]}
    answer = server.request("POST", "auth/token/create", json=body)
    assert answer.json()["warnings"] == ['Policy "no-such-policy" does not exist']


DB_APP_POLICY = """
path "auth/token/create" { capabilities = ["update"] }
path "database/creds/app" { capabilities = ["read"] }
"""


def tree(server: ServerProcess, root: hvac.Client) -> tuple[str, str]:
    """Create parent P (policy db-app, 10m) and its child C (30m)."""
    root.sys.create_or_update_acl_policy("db-app", DB_APP_POLICY)
    parent = create(root, policies=["db-app"], ttl="10m")["client_token"]
    child = as_token(server, parent).auth.token.create(ttl="30m")["auth"]
    return parent, child["client_token"]


def test_revoking_parent_revokes_child(
    root: hvac.Client, server: ServerProcess
) -> None:
    parent, child = tree(server, root)
    server.request("POST", "auth/token/revoke", json={"token": parent})
    for token in (parent, child):
        lookup = server.request("GET", "auth/token/lookup-self", token=token)
        assert lookup.status_code == 403
    log = server.log_path.read_text()
    assert "reason=parent token revoked" in log


def test_revoke_orphan_keeps_children(root: hvac.Client, server: ServerProcess) -> None:
    parent, child = tree(server, root)
    answer = server.request("POST", "auth/token/revoke-orphan", json={"token": parent})
    assert answer.status_code == 204
    assert (
        server.request("GET", "auth/token/lookup-self", token=parent).status_code == 403
    )
    lookup = server.request("GET", "auth/token/lookup-self", token=child)
    assert lookup.status_code == 200
    assert lookup.json()["data"]["orphan"] is True


def test_revoke_orphan_needs_sudo(root: hvac.Client, server: ServerProcess) -> None:
    parent, _ = tree(server, root)
    answer = server.request(
        "POST", "auth/token/revoke-orphan", token=parent, json={"token": parent}
    )
    assert answer.status_code == 403


def test_expired_parent_revokes_child(root: hvac.Client, server: ServerProcess) -> None:
    root.sys.create_or_update_acl_policy("db-app", DB_APP_POLICY)
    parent = create(root, policies=["db-app"], ttl="3s")["client_token"]
    child = as_token(server, parent).auth.token.create(ttl="1h")["auth"]
    time.sleep(4.5)
    assert (
        server.request("GET", "auth/token/lookup-self", token=parent).status_code == 403
    )
    lookup = server.request(
        "GET", "auth/token/lookup-self", token=child["client_token"]
    )
    assert lookup.status_code == 403
    assert "reason=expired" in server.log_path.read_text()


def test_create_orphan_endpoint(root: hvac.Client, server: ServerProcess) -> None:
    root.sys.create_or_update_acl_policy("db-app", DB_APP_POLICY)
    parent = create(root, policies=["db-app"])["client_token"]
    orphan = server.request(
        "POST", "auth/token/create-orphan", token=parent, json={"policies": ["db-app"]}
    )
    assert orphan.status_code == 403
    root.sys.create_or_update_acl_policy(
        "orphan-maker",
        'path "auth/token/create-orphan" { capabilities = ["update"] }\n',
    )
    maker = create(root, policies=["orphan-maker"])["client_token"]
    made = server.request("POST", "auth/token/create-orphan", token=maker, json={})
    assert made.json()["auth"]["orphan"] is True
    root.auth.token.revoke(maker)
    still = server.request(
        "GET", "auth/token/lookup-self", token=made.json()["auth"]["client_token"]
    )
    assert still.status_code == 200


def test_use_limit_ends_token(root: hvac.Client, server: ServerProcess) -> None:
    token = create(root, policies=["default"], num_uses=2)["client_token"]
    first = server.request("GET", "auth/token/lookup-self", token=token)
    assert first.json()["data"]["num_uses"] == 1
    second = server.request("GET", "auth/token/lookup-self", token=token)
    assert second.status_code == 200
    assert (
        server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    )


def test_negative_use_limit_rejected(server: ServerProcess) -> None:
    answer = server.request("POST", "auth/token/create", json={"num_uses": -1})
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["number of uses cannot be negative"]


def test_roles_crud(root: hvac.Client, server: ServerProcess) -> None:
    body = {"allowed_policies": ["default"], "orphan": True, "token_ttl": "10m"}
    server.request("POST", "auth/token/roles/web", json=body).raise_for_status()
    role = server.request("GET", "auth/token/roles/web").json()["data"]
    assert role["allowed_policies"] == ["default"]
    assert role["orphan"] is True
    assert role["token_ttl"] == 600
    assert "web" in server.request("LIST", "auth/token/roles").json()["data"]["keys"]
    made = server.request("POST", "auth/token/create/web", json={}).json()["auth"]
    assert made["orphan"] is True
    assert made["lease_duration"] == 600
    lookup = root.auth.token.lookup(made["client_token"])["data"]
    assert lookup["role"] == "web"
    assert lookup["path"] == "auth/token/create/web"
    server.request("DELETE", "auth/token/roles/web")
    assert server.request("GET", "auth/token/roles/web").status_code == 404
    unknown = server.request("POST", "auth/token/create/web", json={})
    assert unknown.json()["errors"] == ["unknown role web"]


def test_token_never_in_storage_or_log(
    root: hvac.Client, server: ServerProcess
) -> None:
    token = create(root, policies=["default"])["client_token"]
    server.request("GET", "auth/token/lookup-self", token=token)
    database = Path(str(server.config_path).replace("mssm.toml", "mssm.db"))
    blobs = [database.read_bytes(), server.log_path.read_bytes()]
    wal = database.with_name("mssm.db-wal")
    if wal.exists():
        blobs.append(wal.read_bytes())
    for blob in blobs:
        assert token.encode() not in blob
        assert token[4:].encode() not in blob


# -- restart -----------------------------------------------------------------


def test_expired_token_rejected_after_restart(production_server: ServerProcess) -> None:
    server = production_server
    short = server.request("POST", "auth/token/create", json={"ttl": "3s"})
    long = server.request("POST", "auth/token/create", json={"ttl": "1h"})
    short_token = short.json()["auth"]["client_token"]
    long_token = long.json()["auth"]["client_token"]
    server.stop()
    time.sleep(4)
    server.start()
    server.unseal()
    expired = server.request("GET", "auth/token/lookup-self", token=short_token)
    assert expired.status_code == 403
    alive = server.request("GET", "auth/token/lookup-self", token=long_token)
    assert alive.status_code == 200


def test_use_count_survives_restart(production_server: ServerProcess) -> None:
    server = production_server
    made = server.request("POST", "auth/token/create", json={"num_uses": 3})
    token = made.json()["auth"]["client_token"]
    server.request("GET", "auth/token/lookup-self", token=token).raise_for_status()
    server.stop()
    server.start()
    server.unseal()
    second = server.request("GET", "auth/token/lookup-self", token=token)
    assert second.json()["data"]["num_uses"] == 1
    server.request("GET", "auth/token/lookup-self", token=token).raise_for_status()
    assert (
        server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    )


def test_renew_not_renewable(root: hvac.Client) -> None:
    auth = create(root, policies=["default"], ttl="30s", renewable=False)
    with pytest.raises(InvalidRequest, match="lease is not renewable"):
        root.auth.token.renew(auth["client_token"])


# -- periodic tokens and TTL caps on a tuned mount, in real time ---------------


class Timeline:
    """Runs checks at fixed offsets from its start, in order."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def at(self, offset: float) -> None:
        delay = self.start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def expire_in(data: dict) -> float:
    stamp = data["expire_time"]
    moment = datetime.fromisoformat(stamp[:26] + "+00:00")
    return moment.timestamp() - time.time()


class Periods:
    """The tokens of the periodic-token scenario and the calls it makes."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def create(self, body: dict, token: str = "", path: str = "create") -> dict:
        answer = self.server.request(
            "POST", f"auth/token/{path}", token=token, json=body
        )
        return answer.json()

    def renew(self, token: str, increment: str = "") -> dict:
        body = {"increment": increment} if increment else {}
        answer = self.server.request(
            "POST", "auth/token/renew-self", token=token, json=body
        )
        return {"status": answer.status_code} | answer.json()

    def lookup(self, token: str) -> tuple[int, dict]:
        answer = self.server.request("GET", "auth/token/lookup-self", token=token)
        body = answer.json() if answer.status_code == 200 else {}
        return answer.status_code, body.get("data", {})

    def renewed_to(self, token: str, increment: str, low: int, high: int) -> dict:
        """Renew, check the granted TTL, and that lookup agrees with it."""
        answer = self.renew(token, increment)
        granted = answer["auth"]["lease_duration"]
        assert low <= granted <= high
        status, data = self.lookup(token)
        assert status == 200
        assert granted - 2 <= data["ttl"] <= granted
        assert abs(expire_in(data) - granted) <= 2
        return answer


def test_periodic_tokens_and_caps(tmp_path: Path) -> None:
    server = start_production(tmp_path)
    try:
        run_period_scenario(server)
    finally:
        server.stop()


def run_period_scenario(server: ServerProcess) -> None:
    tune = {"default_lease_ttl": "30s", "max_lease_ttl": "90s"}
    server.request("POST", "sys/auth/token/tune", json=tune).raise_for_status()
    role = {"token_period": "60s", "allowed_policies": ["default"]}
    server.request("POST", "auth/token/roles/batchjob", json=role).raise_for_status()
    calls = Periods(server)
    clock = Timeline()

    a = calls.create({"policies": ["default"]})
    assert a["auth"]["lease_duration"] == 30
    assert a["auth"]["renewable"] is True
    b = calls.create({"period": "30s", "policies": ["default"]})
    c = calls.create({"period": "2h", "policies": ["default"]})
    assert c["auth"]["lease_duration"] == 90
    assert "period value is capped" in c["warnings"][0]
    d = calls.create(
        {"period": "30s", "explicit_max_ttl": "75s", "policies": ["default"]}
    )
    e = calls.create({"ttl": "30s", "renewable": False, "policies": ["default"]})
    f = calls.create({}, path="create/batchjob")
    assert f["auth"]["lease_duration"] == 60
    a, b, c, d, e, f = (x["auth"]["client_token"] for x in (a, b, c, d, e, f))

    # Step 5: not renewable, ends at its TTL.
    refused = calls.renew(e)
    assert refused["status"] == 400
    assert "not renewable" in refused["errors"][0]
    assert calls.lookup(e)[1]["renewable"] is False

    # Step 6: renewal reads the role's current period; a deleted role stops it.
    server.request("POST", "auth/token/roles/batchjob", json={"token_period": "20s"})
    calls.renewed_to(f, "", 20, 20)
    server.request("DELETE", "auth/token/roles/batchjob")
    orphaned = calls.renew(f)
    assert orphaned["status"] == 400
    assert "could not be found" in orphaned["errors"][0]
    assert calls.lookup(f)[0] == 200

    # Step 7: a caller without sudo cannot create a periodic token.
    policy = 'path "auth/token/create" { capabilities = ["update"] }'
    server.request("PUT", "sys/policies/acl/tok-create", json={"policy": policy})
    g = calls.create({"policies": ["tok-create"]})["auth"]["client_token"]
    before = len(server.request("LIST", "auth/token/accessors").json()["data"]["keys"])
    denied = calls.create({"period": "30s"}, token=g)
    assert denied["errors"] == [
        "root or sudo privileges required to create periodic token"
    ]
    after = len(server.request("LIST", "auth/token/accessors").json()["data"]["keys"])
    assert after == before

    # Step 4: lookup shows the explicit max and the period.
    _, d_data = calls.lookup(d)
    assert d_data["explicit_max_ttl"] == 75
    assert d_data["period"] == 30

    clock.at(10)
    calls.renewed_to(c, "", 89, 90)
    assert calls.lookup(c)[1]["period"] == 7200

    clock.at(20)
    calls.renewed_to(a, "60s", 59, 60)
    calls.renewed_to(b, "1h", 29, 30)
    calls.renewed_to(d, "", 29, 30)

    clock.at(25)
    assert calls.lookup(f)[0] == 403

    clock.at(35)
    assert calls.lookup(e)[0] == 403

    clock.at(40)
    calls.renewed_to(b, "1h", 29, 30)
    calls.renewed_to(d, "", 29, 30)

    clock.at(60)
    calls.renewed_to(b, "1h", 29, 30)
    capped = calls.renewed_to(d, "", 13, 15)
    assert "TTL value is capped" in capped["warnings"][0]

    clock.at(70)
    capped = calls.renewed_to(a, "60s", 18, 20)
    assert "TTL value is capped" in capped["warnings"][0]

    clock.at(80)
    calls.renewed_to(b, "1h", 29, 30)
    assert calls.lookup(d)[0] == 403

    clock.at(95)
    assert calls.lookup(a)[0] == 403

    for moment in (100, 120, 140):
        clock.at(moment)
        calls.renewed_to(b, "1h", 29, 30)

    # Step 2: the 90s mount max does not end a periodic token...
    clock.at(150)
    assert calls.lookup(b)[0] == 200
    # ...but it ends about one period after its last renewal.
    clock.at(175)
    assert calls.lookup(b)[0] == 403


# -- token revocation and database leases ---------------------------------------

PG_CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
]
DB_CREDS_POLICY = """
path "auth/token/create" { capabilities = ["update"] }
path "database/creds/*" { capabilities = ["read"] }
"""


class Leases:
    """A server with a database mount on a real PostgreSQL target."""

    def __init__(self, server: ServerProcess, target: PostgresTarget) -> None:
        self.server = server
        self.target = target
        self.role = f"r{target.marker}"

    def token(self, ttl: str, parent: str = "") -> str:
        body = {"policies": ["db-creds"], "ttl": ttl}
        answer = self.server.request(
            "POST", "auth/token/create", token=parent, json=body
        )
        return answer.json()["auth"]["client_token"]

    def creds(self, token: str) -> tuple[str, str]:
        answer = self.server.request("GET", f"database/creds/{self.role}", token=token)
        assert answer.status_code == 200, answer.text
        return answer.json()["lease_id"], answer.json()["data"]["username"]

    def lease_status(self, lease_id: str) -> int:
        body = {"lease_id": lease_id}
        return self.server.request("PUT", "sys/leases/lookup", json=body).status_code

    def alive(self, token: str) -> int:
        return self.server.request(
            "GET", "auth/token/lookup-self", token=token
        ).status_code


@pytest.fixture
def leases(tmp_path: Path, pg_target: PostgresTarget) -> Iterator[Leases]:  # noqa: F811
    with fast_retry_env():
        server = start_production(tmp_path)
    try:
        server.request("POST", "sys/mounts/database", json={"type": "database"})
        server.request("POST", "database/config/pg", json=pg_target.config())
        role = {"db_name": "pg", "creation_statements": PG_CREATE, "default_ttl": "1h"}
        server.request("POST", f"database/roles/r{pg_target.marker}", json=role)
        server.request(
            "PUT", "sys/policies/acl/db-creds", json={"policy": DB_CREDS_POLICY}
        )
        yield Leases(server, pg_target)
    finally:
        server.stop()


def test_revoke_parent_drops_child_leases(leases: Leases) -> None:
    parent = leases.token("10m")
    child = leases.token("30m", parent=parent)
    first, first_user = leases.creds(parent)
    second, second_user = leases.creds(child)
    revoked = leases.server.request("POST", "auth/token/revoke", json={"token": parent})
    assert revoked.status_code == 204
    assert leases.alive(parent) == 403
    assert leases.alive(child) == 403
    assert leases.lease_status(first) == 400
    assert leases.lease_status(second) == 400
    target = leases.target
    assert wait_until(lambda: not target.role_exists(first_user), timeout=10)
    assert wait_until(lambda: not target.role_exists(second_user), timeout=10)
    assert "reason=parent token revoked" in leases.server.log_path.read_text()


def test_revoke_orphan_keeps_child_leases(leases: Leases) -> None:
    parent = leases.token("10m")
    child = leases.token("30m", parent=parent)
    first, first_user = leases.creds(parent)
    second, second_user = leases.creds(child)
    answer = leases.server.request(
        "POST", "auth/token/revoke-orphan", json={"token": parent}
    )
    assert answer.status_code == 204
    assert leases.alive(parent) == 403
    assert leases.lease_status(first) == 400
    target = leases.target
    assert wait_until(lambda: not target.role_exists(first_user), timeout=10)
    lookup = leases.server.request("GET", "auth/token/lookup-self", token=child)
    assert lookup.json()["data"]["orphan"] is True
    assert leases.lease_status(second) == 200
    assert target.role_exists(second_user)


def test_expired_token_drops_leases(leases: Leases) -> None:
    token = leases.token("20s")
    lease_id, username = leases.creds(token)
    time.sleep(25)
    assert leases.alive(token) == 403
    assert wait_until(lambda: leases.lease_status(lease_id) == 400, timeout=10)
    target = leases.target
    assert wait_until(lambda: not target.role_exists(username), timeout=10)
