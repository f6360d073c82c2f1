"""Tokens, policies, capabilities, audit devices, wrapping and
generate-root against OpenBao and MSSM: the same requests, compared by
status code and response shape (keys and JSON types, not values).

Where MSSM deliberately adds fields, the comparison leaves them out and
gives the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_differential_core import Pair, Target, shape, shape_differences
from tests.openbao import BaoServer
from tests.server import ServerProcess, free_port

BAO_CONFIG = """
storage "inmem" {{}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
  disable_unauthed_rekey_endpoints = false
  disable_unauthed_generate_root_endpoints = false
}}
unsafe_allow_api_audit_creation = true
"""
# Role fields MSSM adds: a default and a max TTL for the role's tokens.
MSSM_ROLE_FIELDS = ("token_ttl", "token_max_ttl")


def start_mssm(directory: Path) -> ServerProcess:
    port = free_port()
    config = directory / "mssm.toml"
    config.write_text(
        f'[listener]\naddress = "127.0.0.1:{port}"\ntls_disable = true\n'
        "disable_unauthed_rekey_endpoints = false\n"
        f'[storage]\ntype = "sqlite"\npath = "{directory}/mssm.db"\n'
        "[audit_api]\nallow_api_audit_creation = true\n"
        f'allowed_directory = "{directory}"\n'
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", config, directory / "server.log")
    server.start()
    return server


def initialise(target: Target) -> None:
    body = {"secret_shares": 3, "secret_threshold": 2}
    result = target.request("PUT", "sys/init", body, token=False).json()
    target.token, target.keys = result["root_token"], result["keys"]
    for key in target.keys[:2]:
        target.request("PUT", "sys/unseal", {"key": key}, token=False)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pair, Path]]:
    directory = tmp_path_factory.mktemp("differential-tokens")
    (directory / "mssm").mkdir()
    with BaoServer.with_config(directory, BAO_CONFIG) as bao:
        server: ServerProcess | None = None
        try:
            server = start_mssm(directory / "mssm")
            result = Pair(Target("OpenBao", bao.url), Target("MSSM", server.url))
            for target in result.targets():
                initialise(target)
            yield result, directory
        finally:
            if server is not None:
                server.stop()


@pytest.fixture
def pair(started: tuple[Pair, Path]) -> Pair:
    return started[0]


def each(pair: Pair, method: str, path: str, body: dict | None = None) -> list[Any]:
    """Send the same request to both and return both JSON bodies."""
    return [target.request(method, path, body).json() for target in pair.targets()]


def created_tokens(pair: Pair, body: dict) -> list[dict]:
    return [answer["auth"] for answer in each(pair, "POST", "auth/token/create", body)]


def test_token_create(pair: Pair) -> None:
    body = {"policies": ["default"], "ttl": "1h", "meta": {"app": "web"}}
    pair.compare("POST", "auth/token/create", body)


def test_token_lookups(pair: Pair) -> None:
    bao_auth, mssm_auth = created_tokens(pair, {"policies": ["default"], "ttl": "1h"})
    compare_per_target(
        pair, "POST", "auth/token/lookup", [bao_auth, mssm_auth], "token"
    )
    compare_per_target(
        pair, "POST", "auth/token/lookup-accessor", [bao_auth, mssm_auth], "accessor"
    )
    compare_per_target(pair, "POST", "auth/token/renew", [bao_auth, mssm_auth], "token")
    pair.compare("GET", "auth/token/lookup-self")
    pair.compare("LIST", "auth/token/accessors")
    compare_per_target(
        pair, "POST", "auth/token/revoke", [bao_auth, mssm_auth], "token"
    )
    compare_per_target(
        pair, "POST", "auth/token/lookup", [bao_auth, mssm_auth], "token"
    )


def compare_per_target(
    pair: Pair, method: str, path: str, auths: list[dict], field: str
) -> None:
    """Compare a request whose body names each target's own token."""
    source = {"token": "client_token", "accessor": "accessor"}[field]
    answers = [
        target.request(method, path, {field: auth[source]})
        for target, auth in zip(pair.targets(), auths, strict=True)
    ]
    assert answers[1].status_code == answers[0].status_code, (path, answers[1].text)
    bodies = [answer.json() if answer.content else None for answer in answers]
    assert_same_shape(path, bodies[0], bodies[1])


def assert_same_shape(context: str, expected: Any, actual: Any) -> None:
    if isinstance(expected, dict) and "errors" in expected:
        expected = dict(expected, errors=["message"])
        actual = dict(actual, errors=["message"])
    differences = shape_differences(shape(expected), shape(actual))
    assert not differences, f"{context}:\n" + "\n".join(differences)


def test_token_errors(pair: Pair) -> None:
    pair.compare("POST", "auth/token/create", {"ttl": "2w"})
    pair.compare("POST", "auth/token/create", {"num_uses": -1})
    pair.compare("POST", "auth/token/lookup-accessor", {"accessor": "nope"})
    pair.compare("POST", "auth/token/revoke-accessor", {"accessor": "nope"})
    pair.compare("POST", "auth/token/renew", {"token": "nope"})
    pair.compare("POST", "auth/token/create/no-such-role", {})


def test_token_roles(pair: Pair) -> None:
    body = {"allowed_policies": ["default"], "token_period": "60s"}
    pair.compare("POST", "auth/token/roles/batchjob", body)

    def without_mssm_fields(answer: Any) -> Any:
        data = dict(answer["data"])
        for name in MSSM_ROLE_FIELDS:
            data.pop(name, None)
        return data

    pair.compare("GET", "auth/token/roles/batchjob", select=without_mssm_fields)
    pair.compare("LIST", "auth/token/roles")
    pair.compare("POST", "auth/token/create/batchjob", {})
    pair.compare("DELETE", "auth/token/roles/batchjob")
    pair.compare("GET", "auth/token/roles/batchjob")


def test_token_tune(pair: Pair) -> None:
    tune = {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}
    pair.compare("POST", "sys/auth/token/tune", tune)
    pair.compare("GET", "sys/auth/token/tune")
    pair.compare("GET", "sys/auth")
    pair.compare("POST", "auth/token/create", {"ttl": "3h", "policies": ["default"]})
    reset = {"default_lease_ttl": "768h", "max_lease_ttl": "768h"}
    pair.compare("POST", "sys/auth/token/tune", reset)


POLICY = 'path "secret/data/app/*" {\n  capabilities = ["read", "list"]\n}\n'


def test_policies(pair: Pair) -> None:
    pair.compare("PUT", "sys/policies/acl/app", {"policy": POLICY})
    pair.compare("GET", "sys/policies/acl/app")
    pair.compare("GET", "sys/policies/acl/root")
    pair.compare("GET", "sys/policies/acl/nope")
    pair.compare("LIST", "sys/policies/acl")
    pair.compare("GET", "sys/policy")
    pair.compare("GET", "sys/policy/app")
    pair.compare("PUT", "sys/policies/acl/bad", {"policy": ""})
    pair.compare(
        "PUT",
        "sys/policies/acl/bad",
        {"policy": 'path "x" { capabilities = ["reed"] }'},
    )
    pair.compare("PUT", "sys/policies/acl/root", {"policy": POLICY})
    pair.compare("DELETE", "sys/policies/acl/default")
    pair.compare("DELETE", "sys/policies/acl/app")


def test_capabilities(pair: Pair) -> None:
    pair.compare("PUT", "sys/policies/acl/app", {"policy": POLICY})
    created = created_tokens(pair, {"policies": ["app"]})
    paths = ["secret/data/app/db", "secret/data/other"]
    for path, field, source in (
        ("sys/capabilities", "token", "client_token"),
        ("sys/capabilities-accessor", "accessor", "accessor"),
    ):
        answers = [
            target.request("POST", path, {field: auth[source], "paths": paths}).json()
            for target, auth in zip(pair.targets(), created, strict=True)
        ]
        assert answers[0]["data"] == answers[1]["data"]
        assert_same_shape(path, answers[0], answers[1])
    bao, mssm = each(pair, "POST", "sys/capabilities-self", {"path": paths[0]})
    assert bao["data"] == mssm["data"]
    pair.compare("POST", "sys/capabilities-self", {})


def test_audit_devices(started: tuple[Pair, Path]) -> None:
    pair, directory = started
    # Each server writes its own file; MSSM's must be in its allowed_directory.
    files = [directory / "bao-audit.log", directory / "mssm" / "audit.log"]
    answers = [
        target.request(
            "PUT", "sys/audit/file", {"type": "file", "options": {"file_path": str(f)}}
        )
        for target, f in zip(pair.targets(), files, strict=True)
    ]
    assert [answer.status_code for answer in answers] == [204, 204]
    pair.compare("GET", "sys/audit")
    pair.compare("POST", "sys/audit-hash/file", {"input": "needle"})
    pair.compare("POST", "sys/audit-hash/nope", {"input": "needle"})
    pair.compare("PUT", "sys/audit/x", {"type": "nope"})
    pair.compare("DELETE", "sys/audit/file")
    pair.compare("GET", "sys/audit")


def test_wrapping(pair: Pair) -> None:
    headers = {"X-Vault-Wrap-TTL": "5m"}
    wrapped = [
        target.request(
            "POST", "auth/token/create", {"policies": ["default"]}, headers=headers
        )
        for target in pair.targets()
    ]
    assert_same_shape("wrapped create", wrapped[0].json(), wrapped[1].json())
    tokens = [answer.json()["wrap_info"]["token"] for answer in wrapped]
    for path in ("sys/wrapping/lookup", "sys/wrapping/unwrap", "sys/wrapping/unwrap"):
        answers = [
            target.request("POST", path, {"token": token})
            for target, token in zip(pair.targets(), tokens, strict=True)
        ]
        assert answers[0].status_code == answers[1].status_code, path
        assert_same_shape(path, answers[0].json(), answers[1].json())
    pair.compare("POST", "sys/wrapping/wrap", {"a": "b"})


def test_generate_root_status(pair: Pair) -> None:
    pair.compare("GET", "sys/generate-root/attempt", token=False)
    pair.compare("PUT", "sys/generate-root/attempt", {"otp": "short"}, token=False)
    pair.compare("PUT", "sys/generate-root/attempt", {}, token=False)
    pair.compare("PUT", "sys/generate-root/attempt", {}, token=False)
    pair.compare("DELETE", "sys/generate-root/attempt", token=False)
