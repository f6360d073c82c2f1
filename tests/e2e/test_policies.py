"""ACL policies through a running server: hvac's policy calls, a table of
(policy, path, operation, allowed) rows sent as real requests, and the
capabilities endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from hvac.exceptions import InvalidPath

from tests.server import ServerProcess, start_production

TABLE_POLICY = """
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "secret/data/app/admin" {
  capabilities = ["deny"]
}
path "secret/data/rw/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/data/createonly/*" {
  capabilities = ["create"]
}
path "secret/data/updateonly/*" {
  capabilities = ["update"]
}
path "secret/metadata/app/" {
  capabilities = ["list"]
}
path "secret/metadata/teams/+/" {
  capabilities = ["list"]
}
path "secret/metadata/exact" {
  capabilities = ["list"]
}
path "secret/data/teams/+/config" {
  capabilities = ["read"]
}
path "secret/data/shared/*" {
  capabilities = ["read"]
}
path "secret/data/deny-sudo" {
  capabilities = ["read", "sudo", "deny"]
}
path "secret/data/prio/*" {
  capabilities = ["deny"]
}
path "secret/data/prio/+/open" {
  capabilities = ["read"]
}
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/audit" {
  capabilities = ["read"]
}
path "sys/audit/checkpoint" {
  capabilities = ["read", "sudo"]
}
path "auth/token/accessors/" {
  capabilities = ["list"]
}
path "sys/policies/acl/*" {
  capabilities = ["read", "list"]
}
"""
# Same pattern as in TABLE_POLICY: the merged rule contains deny, so deny wins.
DENY_POLICY = """
path "secret/data/shared/*" {
  capabilities = ["deny"]
}
"""
SUDO_POLICY = """
path "auth/token/accessors/" {
  capabilities = ["list", "sudo"]
}
"""
EXISTING_KEYS = ("app/db", "createonly/existing", "updateonly/existing", "rw/existing")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_production(Path(tmp_path_factory.mktemp("policies")))
    mount = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=mount).raise_for_status()
    for key in EXISTING_KEYS:
        body = {"data": {"value": key}}
        server.request("POST", f"secret/data/{key}", json=body).raise_for_status()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def root(server: ServerProcess) -> hvac.Client:
    return hvac.Client(url=server.url, token=server.root_token)


@pytest.fixture(scope="module")
def tokens(root: hvac.Client) -> dict[str, str]:
    root.sys.create_or_update_acl_policy("table", TABLE_POLICY)
    root.sys.create_or_update_acl_policy("denyer", DENY_POLICY)
    root.sys.create_or_update_acl_policy("sudoer", SUDO_POLICY)
    made = {}
    for name, policies in {
        "both": ["table", "denyer"],
        "table": ["table"],
        "sudo": ["sudoer"],
    }.items():
        made[name] = root.auth.token.create(policies=policies)["auth"]["client_token"]
    return made


BODY = {"data": {"value": "x"}}
# (token, method, path, body, allowed). "both" has the table and denyer policies.
TABLE = [
    ("both", "GET", "secret/data/app/db", None, True),
    ("both", "GET", "secret/data/app/sub/deep", None, True),
    ("both", "POST", "secret/data/app/db", BODY, False),
    ("both", "DELETE", "secret/data/app/db", None, False),
    ("both", "GET", "secret/data/app/admin", None, False),
    ("both", "GET", "secret/data/application", None, False),
    ("both", "GET", "secret/data/app", None, False),
    ("both", "GET", "secret/data/other", None, False),
    ("both", "POST", "secret/data/createonly/new-key", BODY, True),
    ("both", "POST", "secret/data/createonly/existing", BODY, False),
    ("both", "GET", "secret/data/createonly/existing", None, False),
    ("both", "POST", "secret/data/updateonly/existing", BODY, True),
    ("both", "POST", "secret/data/updateonly/new-key", BODY, False),
    ("both", "POST", "secret/data/rw/x", BODY, True),
    ("both", "PATCH", "secret/data/rw/existing", BODY, True),
    ("both", "PATCH", "secret/data/app/db", BODY, False),
    ("both", "DELETE", "secret/data/rw/x", None, True),
    ("both", "LIST", "secret/metadata/app", None, True),
    ("both", "LIST", "secret/metadata/other", None, False),
    ("both", "LIST", "secret/metadata/exact", None, True),
    ("both", "GET", "secret/metadata/exact", None, False),
    ("both", "GET", "secret/metadata/app/db", None, False),
    ("both", "LIST", "secret/metadata/teams/blue", None, True),
    ("both", "LIST", "secret/metadata/teams/blue/x", None, False),
    ("both", "GET", "secret/data/teams/red/config", None, True),
    ("both", "GET", "secret/data/teams/red/other", None, False),
    ("both", "GET", "secret/data/teams/red/green/config", None, False),
    ("both", "GET", "secret/data/shared/x", None, False),
    ("table", "GET", "secret/data/shared/x", None, True),
    ("both", "GET", "secret/data/deny-sudo", None, False),
    ("both", "GET", "secret/data/prio/a/open", None, True),
    ("both", "GET", "secret/data/prio/a/closed", None, False),
    ("both", "GET", "sys/mounts", None, True),
    ("both", "GET", "sys/audit", None, False),
    ("both", "GET", "sys/audit/checkpoint", None, True),
    ("both", "LIST", "auth/token/accessors", None, False),
    ("sudo", "LIST", "auth/token/accessors", None, True),
    ("both", "GET", "sys/policies/acl/table", None, True),
    ("both", "PUT", "sys/policies/acl/table", {"policy": TABLE_POLICY}, False),
    ("both", "LIST", "sys/policies/acl", None, True),
    ("both", "GET", "auth/token/lookup-self", None, True),
    ("both", "POST", "auth/token/create", {}, False),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "allowed"),
    TABLE,
    ids=[f"{row[0]}-{row[1]}-{row[2]}" for row in TABLE],
)
def test_policy_table(
    server: ServerProcess,
    tokens: dict[str, str],
    who: str,
    method: str,
    path: str,
    body: dict | None,
    allowed: bool,
) -> None:
    headers = (
        {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    )
    answer = server.request(method, path, token=tokens[who], json=body, headers=headers)
    if allowed:
        assert answer.status_code != 403, answer.text
    else:
        assert answer.status_code == 403, answer.text


# -- hvac calls --------------------------------------------------------------


def test_policy_crud_with_hvac(root: hvac.Client) -> None:
    text = 'path "secret/data/crud/*" {\n  capabilities = ["read"]\n}\n'
    root.sys.create_or_update_acl_policy("crud", text)
    read = root.sys.read_acl_policy("crud")["data"]
    assert read["name"] == "crud"
    assert read["policy"] == text
    assert read["version"] == 1
    assert "crud" in root.sys.list_acl_policies()["data"]["keys"]
    root.sys.delete_acl_policy("crud")
    assert "crud" not in root.sys.list_acl_policies()["data"]["keys"]
    with pytest.raises(InvalidPath):
        root.sys.read_acl_policy("crud")


def test_json_policy_from_hvac_dict(root: hvac.Client, server: ServerProcess) -> None:
    policy = {"path": {"secret/data/json/*": {"capabilities": ["read"]}}}
    root.sys.create_or_update_acl_policy("json-policy", policy)
    token = root.auth.token.create(policies=["json-policy"])["auth"]["client_token"]
    allowed = server.request("GET", "secret/data/json/x", token=token)
    assert allowed.status_code == 404
    assert server.request("GET", "secret/data/other", token=token).status_code == 403


def test_list_ends_with_root(root: hvac.Client) -> None:
    keys = root.sys.list_acl_policies()["data"]["keys"]
    assert keys[-1] == "root"
    assert "default" in keys


def test_policy_name_lowercased(server: ServerProcess) -> None:
    body = {"policy": 'path "x" { capabilities = ["read"] }'}
    server.request("PUT", "sys/policies/acl/MixedCase", json=body).raise_for_status()
    read = server.request("GET", "sys/policies/acl/mixedcase")
    assert read.json()["data"]["name"] == "mixedcase"


def test_change_applies_to_next_request(
    root: hvac.Client, server: ServerProcess
) -> None:
    root.sys.create_or_update_acl_policy("moving", 'path "nothing" { policy = "read" }')
    token = root.auth.token.create(policies=["moving"])["auth"]["client_token"]
    assert server.request("GET", "sys/mounts", token=token).status_code == 403
    root.sys.create_or_update_acl_policy(
        "moving", 'path "sys/mounts" { policy = "read" }'
    )
    assert server.request("GET", "sys/mounts", token=token).status_code == 200
    root.sys.delete_acl_policy("moving")
    assert server.request("GET", "sys/mounts", token=token).status_code == 403


def test_invalid_capability_names_line(server: ServerProcess) -> None:
    text = (
        'path "a" {\n  capabilities = ["read"]\n}\n'
        'path "b" {\n  capabilities = ["reed"]\n}\n'
    )
    answer = server.request("PUT", "sys/policies/acl/bad", json={"policy": text})
    assert answer.status_code == 400
    message = answer.json()["errors"][0]
    assert 'path "b" (line 4)' in message
    assert "'reed'" in message


def test_malformed_hcl_names_line(server: ServerProcess) -> None:
    text = 'path "a" {\n  capabilities = ["read"\n'
    answer = server.request("PUT", "sys/policies/acl/bad", json={"policy": text})
    assert answer.status_code == 400
    assert "line 3" in answer.json()["errors"][0]


def test_empty_policy_rejected(server: ServerProcess) -> None:
    answer = server.request("PUT", "sys/policies/acl/empty", json={"policy": ""})
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["'policy' parameter not supplied or empty"]


def test_builtin_policies_protected(server: ServerProcess) -> None:
    body = {"policy": 'path "*" { capabilities = ["read"] }'}
    write_root = server.request("PUT", "sys/policies/acl/root", json=body)
    assert write_root.json()["errors"] == ['cannot update "root" policy']
    delete_root = server.request("DELETE", "sys/policies/acl/root")
    assert delete_root.json()["errors"] == ['cannot delete "root" policy']
    delete_default = server.request("DELETE", "sys/policies/acl/default")
    assert delete_default.json()["errors"] == ["cannot delete default policy"]


def test_read_root_policy(server: ServerProcess) -> None:
    data = server.request("GET", "sys/policies/acl/root").json()["data"]
    assert data["name"] == "root"
    assert data["policy"] == ""


def test_legacy_policy_paths(server: ServerProcess) -> None:
    text = 'path "legacy/*" { capabilities = ["read"] }'
    server.request("PUT", "sys/policy/legacy", json={"rules": text}).raise_for_status()
    read = server.request("GET", "sys/policy/legacy").json()
    assert read["rules"] == text
    assert read["data"]["rules"] == text
    listed = server.request("GET", "sys/policy").json()
    assert "legacy" in listed["policies"]
    assert listed["keys"] == listed["policies"]


def test_default_policy_self_service(root: hvac.Client, server: ServerProcess) -> None:
    token = root.auth.token.create(policies=["default"])["auth"]["client_token"]
    assert (
        server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    )
    caps = server.request(
        "POST", "sys/capabilities-self", token=token, json={"paths": ["x"]}
    )
    assert caps.status_code == 200
    renew = server.request("POST", "auth/token/renew-self", token=token, json={})
    assert renew.status_code == 200
    assert server.request("GET", "sys/mounts", token=token).status_code == 403
    revoke = server.request("POST", "auth/token/revoke-self", token=token)
    assert revoke.status_code == 204
    assert (
        server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    )


# -- capabilities ------------------------------------------------------------


def test_capabilities_of_token(server: ServerProcess, tokens: dict[str, str]) -> None:
    body = {
        "token": tokens["both"],
        "paths": ["secret/data/rw/x", "secret/data/app/admin", "nowhere"],
    }
    data = server.request("POST", "sys/capabilities", json=body).json()["data"]
    assert data["secret/data/rw/x"] == ["create", "delete", "patch", "read", "update"]
    assert data["secret/data/app/admin"] == ["deny"]
    assert data["nowhere"] == ["deny"]
    assert "capabilities" not in data


def test_capabilities_single_path(
    server: ServerProcess, tokens: dict[str, str]
) -> None:
    body = {"path": "sys/audit/checkpoint"}
    answer = server.request(
        "POST", "sys/capabilities-self", token=tokens["both"], json=body
    ).json()
    assert answer["capabilities"] == ["read", "sudo"]
    assert answer["data"]["sys/audit/checkpoint"] == ["read", "sudo"]


def test_capabilities_accessor(
    root: hvac.Client, server: ServerProcess, tokens: dict[str, str]
) -> None:
    accessor = root.auth.token.lookup(tokens["table"])["data"]["accessor"]
    body = {"accessor": accessor, "paths": ["secret/data/shared/a"]}
    data = server.request("POST", "sys/capabilities-accessor", json=body).json()
    assert data["capabilities"] == ["read"]


def test_capabilities_of_root(server: ServerProcess) -> None:
    answer = server.request("POST", "sys/capabilities-self", json={"paths": ["a"]})
    assert answer.json()["capabilities"] == ["root"]


def test_capabilities_errors(server: ServerProcess) -> None:
    bad_token = server.request(
        "POST", "sys/capabilities", json={"token": "hvs.nope", "paths": ["a"]}
    )
    assert bad_token.json()["errors"] == ["invalid token"]
    bad_accessor = server.request(
        "POST", "sys/capabilities-accessor", json={"accessor": "nope", "paths": ["a"]}
    )
    assert bad_accessor.json()["errors"] == ["invalid accessor"]
    no_paths = server.request("POST", "sys/capabilities-self", json={})
    assert no_paths.json()["errors"] == ["paths must be supplied"]


# -- authentication ----------------------------------------------------------

UNAUTHENTICATED = [
    ("GET", "sys/seal-status"),
    ("GET", "sys/health"),
    ("GET", "sys/init"),
    ("GET", "sys/generate-root/attempt"),
]
AUTHENTICATED = [
    ("GET", "sys/mounts"),
    ("LIST", "sys/policies/acl"),
    ("GET", "sys/audit"),
    ("GET", "auth/token/lookup-self"),
    ("GET", "secret/data/app/db"),
    ("POST", "sys/wrapping/rewrap"),
]


@pytest.mark.parametrize(("method", "path"), UNAUTHENTICATED)
def test_open_without_token(server: ServerProcess, method: str, path: str) -> None:
    assert server.request(method, path, token=None).status_code == 200


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_needs_token(server: ServerProcess, method: str, path: str) -> None:
    assert server.request(method, path, token=None).status_code == 403


def test_unwrap_without_token_is_not_403(server: ServerProcess) -> None:
    answer = server.request("POST", "sys/wrapping/unwrap", token=None, json={})
    assert answer.status_code == 400
