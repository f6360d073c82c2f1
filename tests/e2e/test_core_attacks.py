"""Attacks on the core through a running server: bad input on sys/ and
auth/token/ (huge numbers, deep nesting), paths that dodge an ACL rule,
token creation that widens its parent, a token revoked while it creates
children or reads credentials, seal while requests run, and an audit file
cut while the server was down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import requests

from tests.dbtargets import PostgresTarget, pg_target, wait_until  # noqa: F401
from tests.server import ROOT, ServerProcess, start_dev, start_production

ADMIN_POLICY = 'path "*" { capabilities = ["create", "read", "update", "delete"] }'
DELEGATE_POLICY = """
path "sys/policies/acl/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "sys/policies/acl/admin" {
  capabilities = ["deny"]
}
path "sys/policies/acl/delegate" {
  capabilities = ["deny"]
}
path "sys/policy/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "sys/policy/admin" {
  capabilities = ["deny"]
}
path "sys/mounts/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "sys/mounts/kept" {
  capabilities = ["deny"]
}
path "sys/mounts/kept/tune" {
  capabilities = ["deny"]
}
"""
WIDE_OPEN = 'path "*" { capabilities = ["read"] }'
MAKER_POLICY = 'path "auth/token/create" { capabilities = ["update"] }'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_dev(tmp_path_factory.mktemp("core-attacks"))
    yield server
    server.stop()


def put_policy(server: ServerProcess, name: str, text: str) -> None:
    answer = server.request("PUT", f"sys/policies/acl/{name}", json={"policy": text})
    assert answer.status_code == 204, answer.text


def child_token(server: ServerProcess, *policies: str) -> str:
    body = {"policies": list(policies), "ttl": "10m"}
    answer = server.request("POST", "auth/token/create", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["auth"]["client_token"]


def policy_text(server: ServerProcess, name: str) -> str:
    return server.request("GET", f"sys/policies/acl/{name}").json()["data"]["policy"]


# -- policy names that normalise to a denied one ----------------------------


@pytest.fixture
def delegate(server: ServerProcess) -> str:
    put_policy(server, "admin", ADMIN_POLICY)
    put_policy(server, "delegate", DELEGATE_POLICY)
    return child_token(server, "delegate")


@pytest.mark.parametrize(
    "path",
    [
        "sys/policies/acl/ADMIN",
        "sys/policies/acl/Admin",
        "sys/policies/acl/%20admin",
        "sys/policies/acl/admin%20",
        "sys/policies/acl/admin%09",
        "sys/policies/acl/DELEGATE",
        "sys/policies/acl/delegate%0B",
        "sys/policy/ADMIN",
        "sys/policy/admin%20",
    ],
)
def test_policy_write_case_denied(
    server: ServerProcess, delegate: str, path: str
) -> None:
    answer = server.request("PUT", path, token=delegate, json={"policy": WIDE_OPEN})

    assert answer.status_code == 403, answer.text
    assert policy_text(server, "admin") == ADMIN_POLICY
    assert policy_text(server, "delegate") == DELEGATE_POLICY


def test_policy_delete_case_denied(server: ServerProcess, delegate: str) -> None:
    answer = server.request("DELETE", "sys/policies/acl/ADMIN", token=delegate)

    assert answer.status_code == 403, answer.text
    assert policy_text(server, "admin") == ADMIN_POLICY


def test_policy_write_allowed_name(server: ServerProcess, delegate: str) -> None:
    answer = server.request(
        "PUT", "sys/policies/acl/Team-A", token=delegate, json={"policy": WIDE_OPEN}
    )

    assert answer.status_code == 204, answer.text
    assert policy_text(server, "team-a") == WIDE_OPEN


# -- mount paths with extra slashes -------------------------------------------


@pytest.fixture
def kept_mount(server: ServerProcess) -> Iterator[str]:
    answer = server.request("POST", "sys/mounts/kept", json={"type": "kv"})
    assert answer.status_code == 204, answer.text
    yield "kept/"
    server.request("DELETE", "sys/mounts/kept")


def mount_paths(server: ServerProcess) -> set[str]:
    return set(server.request("GET", "sys/mounts").json()["data"])


@pytest.mark.parametrize("path", ["sys/mounts//kept", "sys/mounts/kept/"])
def test_unmount_slash_variant_denied(
    server: ServerProcess, delegate: str, kept_mount: str, path: str
) -> None:
    answer = server.request("DELETE", path, token=delegate)

    assert answer.status_code == 403, answer.text
    assert kept_mount in mount_paths(server)


def test_tune_slash_variant_denied(
    server: ServerProcess, delegate: str, kept_mount: str
) -> None:
    body = {"description": "changed"}
    answer = server.request("POST", "sys/mounts//kept/tune", token=delegate, json=body)

    assert answer.status_code == 403, answer.text
    tune = server.request("GET", "sys/mounts/kept/tune").json()
    assert tune["description"] == ""


def test_unmount_allowed_mount(server: ServerProcess, delegate: str) -> None:
    server.request("POST", "sys/mounts/scratch", json={"type": "kv"})

    answer = server.request("DELETE", "sys/mounts/scratch", token=delegate)

    assert answer.status_code == 204, answer.text
    assert "scratch/" not in mount_paths(server)


# -- unknown paths and mounts -------------------------------------------------


def test_unknown_mount_hidden_without_access(server: ServerProcess) -> None:
    put_policy(server, "tiny", 'path "secret/data/app" { capabilities = ["read"] }')
    token = child_token(server, "tiny")

    for path in ("nosuchmount/x", "sys/nosuch", "auth/nosuch/login", "auth/token/x"):
        answer = server.request("GET", path, token=token)
        assert answer.status_code == 403, (path, answer.text)


def test_unknown_path_found_with_access(server: ServerProcess) -> None:
    put_policy(server, "everything", 'path "*" { capabilities = ["read"] }')
    token = child_token(server, "everything")

    answer = server.request("GET", "nosuchmount/x", token=token)

    assert answer.status_code == 404, answer.text
    assert server.request("GET", "nosuchmount/x").status_code == 404


# -- token creation -----------------------------------------------------------


def test_role_name_in_body_ignored(server: ServerProcess) -> None:
    role = {"orphan": True, "token_period": "1h", "allowed_policies": ["maker"]}
    assert server.request("POST", "auth/token/roles/svc", json=role).status_code == 204
    put_policy(server, "maker", MAKER_POLICY)
    token = child_token(server, "maker")

    answer = server.request(
        "POST", "auth/token/create", token=token, json={"role_name": "svc"}
    )

    assert answer.status_code == 200, answer.text
    created = answer.json()["auth"]["client_token"]
    lookup = server.request("GET", "auth/token/lookup-self", token=created).json()
    assert lookup["data"]["orphan"] is False
    assert "period" not in lookup["data"]
    assert "role" not in lookup["data"]
    assert "role_name" in " ".join(answer.json()["warnings"] or [])


def test_role_path_still_needs_acl(server: ServerProcess) -> None:
    put_policy(server, "maker", MAKER_POLICY)
    token = child_token(server, "maker")

    answer = server.request("POST", "auth/token/create/svc", token=token, json={})

    assert answer.status_code == 403, answer.text


def create_children(server: ServerProcess, parent: str, count: int) -> list[str]:
    """Create count children of parent from 40 threads; return those created."""
    created: list[str] = []

    def create(_: int) -> None:
        body = {"policies": ["maker"], "ttl": "1h"}
        answer = server.request("POST", "auth/token/create", token=parent, json=body)
        if answer.status_code == 200:
            created.append(answer.json()["auth"]["client_token"])

    with ThreadPoolExecutor(40) as pool:
        list(pool.map(create, range(count)))
    return created


def test_revoke_during_child_creation(
    audited: tuple[ServerProcess, Path],
) -> None:
    server, _ = audited
    put_policy(server, "maker", MAKER_POLICY)
    survivors: list[str] = []

    for _ in range(5):
        parent = child_token(server, "maker")
        revoker = threading.Timer(
            0.15,
            server.request,
            ("POST", "auth/token/revoke"),
            {"json": {"token": parent}},
        )
        revoker.start()
        created = create_children(server, parent, 120)
        revoker.join()
        for token in created:
            lookup = server.request("GET", "auth/token/lookup-self", token=token)
            if lookup.status_code != 403:
                survivors.append(token)

    assert survivors == []


SLOW_CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    "SELECT pg_sleep(1);",
]


def test_creds_during_token_revoke(
    audited: tuple[ServerProcess, Path],
    pg_target: PostgresTarget,  # noqa: F811
) -> None:
    server, _ = audited
    role = f"r{pg_target.marker}"
    steps = [
        ("sys/mounts/database", {"type": "database"}),
        ("database/config/pg", pg_target.config()),
        (
            f"database/roles/{role}",
            {"db_name": "pg", "creation_statements": SLOW_CREATE},
        ),
    ]
    for path, body in steps:
        assert server.request("POST", path, json=body).status_code == 204, path
    put_policy(
        server, "creds", f'path "database/creds/{role}" {{ capabilities = ["read"] }}'
    )
    token = child_token(server, "creds")
    answers: list[requests.Response] = []
    reader = threading.Thread(
        target=lambda: answers.append(
            server.request("GET", f"database/creds/{role}", token=token)
        )
    )

    reader.start()
    time.sleep(0.4)
    revoked = server.request("POST", "auth/token/revoke", json={"token": token})
    reader.join()

    assert revoked.status_code == 204, revoked.text
    assert answers[0].status_code == 403, answers[0].text
    assert wait_until(lambda: pg_target.marked_roles() == [], timeout=10)


def test_child_of_expired_parent_after_restart(
    audited: tuple[ServerProcess, Path],
) -> None:
    server, _ = audited
    put_policy(server, "maker", MAKER_POLICY)
    body = {"policies": ["maker"], "ttl": "3s"}
    parent = server.request("POST", "auth/token/create", json=body)
    parent_token = parent.json()["auth"]["client_token"]
    body = {"policies": ["maker"], "ttl": "1h"}
    child = server.request("POST", "auth/token/create", token=parent_token, json=body)
    child_token_id = child.json()["auth"]["client_token"]
    server.stop(signal.SIGTERM)
    time.sleep(4)

    server.start()
    server.unseal()
    lookup = server.request("GET", "auth/token/lookup-self", token=child_token_id)

    assert lookup.status_code == 403, lookup.text


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"1e300", b"100000000000000000000000000000", b"-1e30", b'"1e40"']
)
def test_num_uses_huge_rejected(server: ServerProcess, raw: bytes) -> None:
    body = b'{"policies": ["default"], "num_uses": ' + raw + b"}"

    answer = server.request("POST", "auth/token/create", data=body)

    assert answer.status_code == 400, answer.text
    assert "num_uses" in answer.json()["errors"][0]


def test_int_field_huge_rejected(server: ServerProcess) -> None:
    body = b'{"policy": "path \\"a\\" { capabilities = [\\"read\\"] }", "cas": 1e30}'

    answer = server.request("PUT", "sys/policies/acl/huge", data=body)

    assert answer.status_code == 400, answer.text
    assert "cas" in answer.json()["errors"][0]


@pytest.mark.parametrize(
    "code", ["-1", "0", "99", "600", "100000000000000000000000000000", "1e3"]
)
def test_health_code_out_of_range(server: ServerProcess, code: str) -> None:
    answer = server.request("GET", f"sys/health?activecode={code}", token=None)

    assert answer.status_code == 400, answer.text
    assert "activecode" in answer.json()["errors"][0]


def test_health_code_in_range(server: ServerProcess) -> None:
    answer = server.request("GET", "sys/health?activecode=299", token=None)

    assert answer.status_code == 299
    assert answer.json()["sealed"] is False


def nested(depth: int) -> bytes:
    """Return a JSON body whose objects are depth levels deep in all."""
    inner = b'{"a":' * (depth - 1) + b'"leaf"' + b"}" * (depth - 1)
    return b'{"data":' + inner + b"}"


@pytest.mark.parametrize("depth", [129, 300, 1000])
def test_deep_body_rejected(server: ServerProcess, depth: int) -> None:
    server.request("POST", "sys/mounts/deep", json={"type": "kv-v2"})

    answer = server.request("POST", f"deep/data/key{depth}", data=nested(depth))

    assert answer.status_code == 400, answer.text
    assert "nested more than 128 levels" in answer.json()["errors"][0]
    assert server.request("GET", f"deep/data/key{depth}").status_code == 404


def test_deep_body_at_limit(server: ServerProcess) -> None:
    server.request("POST", "sys/mounts/deep", json={"type": "kv-v2"})

    answer = server.request("POST", "deep/data/limit", data=nested(128))

    assert answer.status_code == 200, answer.text
    read = server.request("GET", "deep/data/limit")
    assert read.status_code == 200, read.text
    assert read.content.count(b'{"a":') == 127


# -- seal with an audit device --------------------------------------------------


def audit_config(log: Path) -> str:
    return (
        '[[audit]]\ntype = "file"\npath = "file"\n'
        f'options = {{ file_path = "{log}" }}\n'
    )


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    log = tmp_path / "audit.log"
    server = start_production(tmp_path, extra=audit_config(log))
    server.request("POST", "sys/mounts/secret", json={"type": "kv-v2"})
    yield server, log
    server.stop()


def audit_lines(log: Path) -> list[dict]:
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


def test_deep_body_audited(audited: tuple[ServerProcess, Path]) -> None:
    server, log = audited

    deep = server.request("POST", "secret/data/deep", data=nested(500))
    limit = server.request("POST", "secret/data/limit", data=nested(128))

    assert deep.status_code == 400, deep.text
    assert limit.status_code == 200, limit.text
    paths = [line.get("request", {}).get("path") for line in audit_lines(log)]
    assert paths.count("secret/data/limit") == 2


def test_seal_with_audit_device(audited: tuple[ServerProcess, Path]) -> None:
    server, log = audited

    answer = server.request("PUT", "sys/seal")

    assert answer.status_code == 204, answer.text
    status = server.request("GET", "sys/seal-status", token=None).json()
    assert status["sealed"] is True
    seal_lines = [
        line
        for line in audit_lines(log)
        if line.get("request", {}).get("path") == "sys/seal"
    ]
    assert [line["type"] for line in seal_lines] == ["request", "response"]


def test_seal_during_writes(audited: tuple[ServerProcess, Path]) -> None:
    server, _ = audited
    # Keep every version, so that each acknowledged write can be read back.
    server.request("POST", "secret/config", json={"max_versions": 100})
    codes: list[int] = []
    written: list[tuple[str, int]] = []

    def write_loop(worker: int) -> None:
        session = requests.Session()
        headers = {"X-Vault-Token": server.root_token}
        for number in range(25):
            key = f"inflight{worker}"
            answer = session.post(
                f"{server.url}/v1/secret/data/{key}",
                headers=headers,
                json={"data": {"n": number}},
                timeout=30,
            )
            codes.append(answer.status_code)
            if answer.status_code == 200:
                written.append((key, answer.json()["data"]["version"]))

    workers = [threading.Thread(target=write_loop, args=(i,)) for i in range(20)]
    for worker in workers:
        worker.start()
    time.sleep(0.3)
    sealed = server.request("PUT", "sys/seal")
    for worker in workers:
        worker.join()

    assert sealed.status_code == 204, sealed.text
    assert set(codes) <= {200, 503}, sorted(set(codes))
    server.unseal()
    for key, version in written:
        read = server.request("GET", f"secret/data/{key}?version={version}")
        assert read.status_code == 200, (key, version, read.text)


# -- an audit file cut while the server was down --------------------------------


def verify_online(server: ServerProcess, log: Path) -> subprocess.CompletedProcess:
    key = server.request("GET", "sys/audit/checkpoint").json()["public_key"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSSM_")}
    env["MSSM_TOKEN"] = server.root_token
    command = [sys.executable, "-m", "mssm", "audit", "verify", str(log)]
    command += ["-public-key", key, "-address", server.url]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)


def cut_before(log: Path, marker: bytes) -> None:
    """Keep the lines up to the last checkpoint before the first marker line."""
    kept: list[bytes] = []
    for raw in log.read_bytes().splitlines():
        if marker in raw:
            break
        kept.append(raw)
    while b'"type":"checkpoint"' not in kept[-1]:
        kept.pop()
    log.write_bytes(b"\n".join(kept) + b"\n")


def test_cut_tail_found_after_restart(audited: tuple[ServerProcess, Path]) -> None:
    server, log = audited
    time.sleep(1.2)
    body = {"data": {"who": "intruder"}}
    assert server.request("POST", "secret/data/evidence", json=body).ok
    server.stop(signal.SIGTERM)

    cut_before(log, b"secret/data/evidence")
    server.start()
    server.unseal()
    server.request("GET", "secret/data/other")
    time.sleep(1.2)
    result = verify_online(server, log)

    assert b"secret/data/evidence" not in log.read_bytes()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "prev_hash does not match" in result.stderr
