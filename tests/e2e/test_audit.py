"""Audit devices through a running server: hvac's audit calls, what a log
contains, failing closed, and tamper detection by `mssm audit verify`."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import hvac
import orjson
import pytest
from hvac.exceptions import InvalidRequest

from tests.server import ROOT, ServerProcess, start_production

PASSWORD = "Tr0ub4dor-x"
# 4321 as a value of its own, not inside a hex digest or a timestamp.
PIN_IN_CLEAR = re.compile(rb"(?<![0-9a-f])4321(?![0-9a-f])")


def declared(name: str, file_path: str | Path) -> str:
    return (
        f'[[audit]]\ntype = "file"\npath = "{name}"\n'
        f'options = {{ file_path = "{file_path}" }}\n'
    )


def api_allowed(directory: Path) -> str:
    return (
        "[audit_api]\nallow_api_audit_creation = true\n"
        f'allowed_directory = "{directory}"\n'
    )


def mount_kv(server: ServerProcess) -> None:
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()


def write_secret(server: ServerProcess, key: str, data: dict) -> int:
    answer = server.request("POST", f"secret/data/{key}", json={"data": data})
    return answer.status_code


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def verify(*args: str, token: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSSM_", "VAULT_"))}
    if token:
        env["MSSM_TOKEN"] = token
    command = [sys.executable, "-m", "mssm", "audit", "verify", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)


def public_key(server: ServerProcess) -> str:
    return server.request("GET", "sys/audit/checkpoint").json()["public_key"]


# -- a server with traffic ---------------------------------------------------


class Traffic:
    def __init__(self, server: ServerProcess, log: Path) -> None:
        self.server = server
        self.log = log
        self.child = ""


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    directory = Path(tmp_path_factory.mktemp("audit"))
    log = directory / "audit.log"
    server = start_production(directory, extra=declared("file", log))
    try:
        yield make_traffic(Traffic(server, log))
    finally:
        server.stop()


def make_traffic(traffic: Traffic) -> Traffic:
    server = traffic.server
    mount_kv(server)
    secret = {"password": PASSWORD, "pin": 4321, "enabled": True}
    assert write_secret(server, "app", secret) == 200
    assert server.request("GET", "secret/data/app").json()["data"]["data"] == secret
    created = server.request(
        "POST", "auth/token/create", json={"policies": ["default"]}
    )
    traffic.child = created.json()["auth"]["client_token"]
    server.request("GET", "auth/token/lookup-self", token=traffic.child)
    server.request("GET", "sys/mounts", token="hvs.not-a-token")
    time.sleep(1.3)
    for i in range(3):
        write_secret(server, f"more/{i}", {"value": f"v{i}"})
    time.sleep(1.3)
    return traffic


def test_log_has_no_secret_in_clear(traffic: Traffic) -> None:
    content = traffic.log.read_bytes()
    assert PASSWORD.encode() not in content
    assert PIN_IN_CLEAR.search(content) is None
    assert traffic.server.root_token.encode() not in content
    assert traffic.child.encode() not in content


def test_scalars_in_data_are_hashed(traffic: Traffic) -> None:
    writes = [
        line
        for line in lines(traffic.log)
        if line.get("type") == "request"
        and line["request"]["path"] == "secret/data/app"
        and line["request"]["operation"] in ("create", "update")
    ]
    data = writes[0]["request"]["data"]["data"]
    for name in ("password", "pin", "enabled"):
        assert data[name].startswith("hmac-sha256:")


def test_audit_hash_matches_log(traffic: Traffic) -> None:
    answer = traffic.server.request(
        "POST", "sys/audit-hash/file", json={"input": PASSWORD}
    )
    digest = answer.json()["hash"]
    assert digest.startswith("hmac-sha256:")
    assert digest.encode() in traffic.log.read_bytes()


def test_request_and_response_per_call(traffic: Traffic) -> None:
    kinds: Counter = Counter()
    for line in lines(traffic.log):
        if line.get("type") in ("request", "response"):
            kinds[(line["request"]["id"], line["type"])] += 1
    request_ids = {request_id for request_id, _ in kinds}
    for request_id in request_ids:
        assert kinds[(request_id, "response")] == 1
    answered = [rid for rid in request_ids if kinds[(rid, "request")] == 1]
    # Only the rejected token's request has no request line of its own.
    assert len(request_ids) - len(answered) == 1


def test_read_request_line_comes_with_its_response(traffic: Traffic) -> None:
    # A read changes nothing, so its request line is written together with
    # its response line: next to it, and with the time the request came in.
    logged = lines(traffic.log)
    reads = [
        n
        for n, line in enumerate(logged)
        if line.get("type") == "request"
        and line["request"]["path"] == "secret/data/app"
        and line["request"]["operation"] == "read"
    ]
    assert len(reads) == 1
    request, response = logged[reads[0]], logged[reads[0] + 1]
    assert response["type"] == "response"
    assert response["request"]["id"] == request["request"]["id"]
    assert response["seq"] == request["seq"] + 1
    assert request["time"] <= response["time"]
    assert response["response"]["data"]["data"]["pin"].startswith("hmac-sha256:")


def test_rejected_request_recorded(traffic: Traffic) -> None:
    rejected = [
        line
        for line in lines(traffic.log)
        if line.get("type") == "response" and line.get("error") == "permission denied"
    ]
    assert rejected[0]["request"]["path"] == "sys/mounts"
    assert rejected[0]["request"]["client_token"].startswith("hmac-sha256:")


def test_line_fields(traffic: Traffic) -> None:
    request = next(line for line in lines(traffic.log) if line.get("type") == "request")
    assert request["auth"]["policies"] == ["root"]
    assert request["auth"]["accessor"].startswith("hmac-sha256:")
    assert request["request"]["remote_address"] == "127.0.0.1"
    assert request["request"]["operation"] == "update"
    assert request["time"].endswith("Z")
    assert len(request["prev_hash"]) == 64


def test_checkpoint_within_a_second(traffic: Traffic) -> None:
    server = traffic.server
    server.request("GET", "secret/data/app")
    time.sleep(1.5)
    last = lines(traffic.log)[-1]
    assert last["type"] == "checkpoint"
    stored = server.request("GET", "sys/audit/checkpoint").json()
    assert stored["checkpoints"]["file/"]["seq"] >= last["seq"]
    assert stored["key_id"] == last["key_id"]


def test_intact_log_verifies(traffic: Traffic) -> None:
    key = public_key(traffic.server)
    result = verify(str(traffic.log), "-public-key", key)
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout
    online = verify(
        str(traffic.log),
        "-public-key",
        key,
        "-address",
        traffic.server.url,
        token=traffic.server.root_token,
    )
    assert online.returncode == 0, online.stderr


# -- tampering ---------------------------------------------------------------


def tampered_copy(traffic: Traffic, tmp_path: Path, change) -> Path:  # noqa: ANN001
    raw = traffic.log.read_bytes().splitlines(keepends=True)
    copy = tmp_path / "audit.log"
    copy.write_bytes(b"".join(change(raw)))
    return copy


def request_index(raw: list[bytes]) -> int:
    """Index of the first request line that a later checkpoint covers."""
    return next(i for i, line in enumerate(raw) if b'"type":"request"' in line)


def test_edited_line_detected(traffic: Traffic, tmp_path: Path) -> None:
    def edit(raw: list[bytes]) -> list[bytes]:
        i = request_index(raw)
        raw[i] = raw[i].replace(b'"operation":"update"', b'"operation":"read"')
        return raw

    copy = tampered_copy(traffic, tmp_path, edit)
    result = verify(str(copy), "-public-key", public_key(traffic.server))
    assert result.returncode == 3
    assert "prev_hash does not match" in result.stderr
    assert f"{copy}:" in result.stderr


def test_deleted_line_detected(traffic: Traffic, tmp_path: Path) -> None:
    def delete(raw: list[bytes]) -> list[bytes]:
        del raw[request_index(raw) + 1]
        return raw

    copy = tampered_copy(traffic, tmp_path, delete)
    result = verify(str(copy), "-public-key", public_key(traffic.server))
    assert result.returncode == 3
    assert "prev_hash does not match" in result.stderr


def test_swapped_lines_detected(traffic: Traffic, tmp_path: Path) -> None:
    first = request_index(traffic.log.read_bytes().splitlines())

    def swap(raw: list[bytes]) -> list[bytes]:
        raw[first], raw[first + 1] = raw[first + 1], raw[first]
        return raw

    copy = tampered_copy(traffic, tmp_path, swap)
    result = verify(str(copy), "-public-key", public_key(traffic.server))
    assert result.returncode == 3
    # Line numbers count from 1: the first moved line is the first bad one.
    assert f"{copy}:{first + 1}: prev_hash does not match" in result.stderr


def test_rebuilt_chain_detected(traffic: Traffic, tmp_path: Path) -> None:
    def rebuild(raw: list[bytes]) -> list[bytes]:
        parsed = [orjson.loads(line) for line in raw]
        parsed[request_index(raw)]["request"]["path"] = "sys/innocent"
        previous = "0" * 64
        rebuilt = []
        for line in parsed:
            line["prev_hash"] = previous
            if line["type"] == "checkpoint":
                line["head_hash"] = previous
            encoded = orjson.dumps(line)
            rebuilt.append(encoded + b"\n")
            previous = hashlib.sha256(encoded).hexdigest()
        return rebuilt

    copy = tampered_copy(traffic, tmp_path, rebuild)
    result = verify(str(copy), "-public-key", public_key(traffic.server))
    assert result.returncode == 3
    assert "checkpoint signature is invalid" in result.stderr


def test_cut_tail_detected(traffic: Traffic, tmp_path: Path) -> None:
    server = traffic.server
    server.request("GET", "secret/data/app")
    time.sleep(1.5)
    copy = tampered_copy(traffic, tmp_path, lambda raw: raw[:-2])
    offline = verify(str(copy), "-public-key", public_key(server))
    assert offline.returncode == 0
    online = verify(
        str(copy),
        "-public-key",
        public_key(server),
        "-address",
        server.url,
        token=server.root_token,
    )
    assert online.returncode == 3
    assert "cut off from the end" in online.stderr


def test_wrong_public_key_fails(traffic: Traffic) -> None:
    other = "A" * 43 + "="
    result = verify(str(traffic.log), "-public-key", other)
    assert result.returncode == 3
    assert "not with the given public key" in result.stderr


# -- devices through the API -------------------------------------------------


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_production(tmp_path, extra=api_allowed(tmp_path))
    yield server
    server.stop()


def test_hvac_device_calls(api_server: ServerProcess, tmp_path: Path) -> None:
    client = hvac.Client(url=api_server.url, token=api_server.root_token)
    log = tmp_path / "api.log"
    client.sys.enable_audit_device(
        "file", description="api", options={"file_path": str(log)}
    )
    devices = client.sys.list_enabled_audit_devices()["data"]
    assert devices["file/"]["type"] == "file"
    assert devices["file/"]["description"] == "api"
    assert devices["file/"]["options"] == {"file_path": str(log)}
    digest = client.sys.calculate_hash("file", "needle")["data"]["hash"]
    assert digest.startswith("hmac-sha256:")
    client.sys.disable_audit_device("file")
    assert client.sys.list_enabled_audit_devices()["data"] == {}
    assert lines(log)[-1]["type"] == "checkpoint"


def test_enable_unopenable_path(api_server: ServerProcess, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "audit.log"
    body = {"type": "file", "options": {"file_path": str(missing)}}
    answer = api_server.request("PUT", "sys/audit/file", json=body)
    assert answer.status_code == 400
    assert "cannot open audit file" in answer.json()["errors"][0]
    assert api_server.request("GET", "sys/audit").json()["data"] == {}


def test_enable_outside_allowed_directory(api_server: ServerProcess) -> None:
    body = {"type": "file", "options": {"file_path": "/tmp/elsewhere.log"}}
    answer = api_server.request("PUT", "sys/audit/file", json=body)
    assert answer.status_code == 400
    assert "outside [audit_api] allowed_directory" in answer.json()["errors"][0]


def test_enable_rejects_log_raw(api_server: ServerProcess, tmp_path: Path) -> None:
    options = {"file_path": str(tmp_path / "raw.log"), "log_raw": "true"}
    answer = api_server.request(
        "PUT", "sys/audit/file", json={"type": "file", "options": options}
    )
    assert "log_raw is not supported" in answer.json()["errors"][0]


def test_enable_duplicate_path(api_server: ServerProcess, tmp_path: Path) -> None:
    body = {"type": "file", "options": {"file_path": str(tmp_path / "a.log")}}
    api_server.request("PUT", "sys/audit/file", json=body).raise_for_status()
    again = api_server.request("PUT", "sys/audit/file", json=body)
    assert again.json()["errors"] == ["path already in use"]


def test_api_devices_survive_restart(api_server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "kept.log"
    body = {"type": "file", "options": {"file_path": str(log)}}
    api_server.request("PUT", "sys/audit/kept", json=body).raise_for_status()
    api_server.stop()
    api_server.start()
    api_server.unseal()
    assert "kept/" in api_server.request("GET", "sys/audit").json()["data"]
    key = public_key(api_server)
    result = verify(str(log), "-public-key", key)
    assert result.returncode == 0, result.stderr


def test_api_creation_off_by_default(production_server: ServerProcess) -> None:
    body = {"type": "file", "options": {"file_path": "/tmp/x.log"}}
    answer = production_server.request("PUT", "sys/audit/file", json=body)
    assert answer.status_code == 400
    assert "[[audit]]" in answer.json()["errors"][0]


def test_unknown_device_hash(production_server: ServerProcess) -> None:
    client = hvac.Client(url=production_server.url, token=production_server.root_token)
    with pytest.raises(InvalidRequest, match='unknown audit backend "nope/"'):
        client.sys.calculate_hash("nope", "x")


# -- declared devices, restart and rotation -----------------------------------


def test_declared_device_not_disabled(tmp_path: Path) -> None:
    server = start_production(tmp_path, extra=declared("file", tmp_path / "a.log"))
    try:
        answer = server.request("DELETE", "sys/audit/file")
        assert answer.status_code == 400
        assert "declared in the config file" in answer.json()["errors"][0]
    finally:
        server.stop()


def test_chain_across_restart_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    server = start_production(tmp_path, extra=declared("file", log))
    try:
        mount_kv(server)
        server.stop()
        server.start()
        server.unseal()
        write_secret(server, "a", {"v": "1"})
        os.rename(log, tmp_path / "audit.log.1")
        write_secret(server, "b", {"v": "2"})
        key = public_key(server)
    finally:
        server.stop()
    assert lines(log)[0]["type"] == "file_start"
    result = verify(str(tmp_path / "audit.log.1"), str(log), "-public-key", key)
    assert result.returncode == 0, result.stderr
    assert "Note:" not in result.stdout


# -- failing closed ------------------------------------------------------------


def test_full_device_fails_closed(tmp_path: Path) -> None:
    server = start_production(tmp_path)
    try:
        mount_kv(server)
        assert write_secret(server, "app", {"password": "v1"}) == 200
        config = server.config_path
        assert config is not None
        plain_config = config.read_text()
        config.write_text(plain_config + declared("full", "/dev/full"))
        restart(server)

        refused = server.request(
            "POST", "secret/data/app", json={"data": {"password": "v2-secret"}}
        )
        assert refused.status_code == 500
        assert "audit" in refused.json()["errors"][0]
        assert "v2-secret" not in refused.text
        assert server.request("GET", "secret/data/app").status_code == 500

        config.write_text(plain_config)
        restart(server)
        kept = server.request("GET", "secret/data/app").json()["data"]
        assert kept["data"] == {"password": "v1"}
        assert kept["metadata"]["version"] == 1
    finally:
        server.stop()
    assert "audit device full/ cannot write /dev/full" in server.log_path.read_text()


def restart(server: ServerProcess) -> None:
    server.stop()
    server.start()
    server.unseal()


def test_one_working_device_is_enough(tmp_path: Path) -> None:
    log = tmp_path / "good.log"
    extra = declared("full", "/dev/full") + declared("good", log)
    server = start_production(tmp_path, extra=extra)
    try:
        mount_kv(server)
        assert write_secret(server, "app", {"password": "p"}) == 200
        assert server.request("GET", "secret/data/app").status_code == 200
    finally:
        server.stop()
    assert any(line.get("type") == "request" for line in lines(log))


def test_device_recovers_without_restart(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    server = start_production(tmp_path, extra=declared("file", directory / "a.log"))
    try:
        mount_kv(server)
        shutil.rmtree(directory)
        assert write_secret(server, "app", {"password": "p"}) == 500
        directory.mkdir()
        assert write_secret(server, "app", {"password": "p"}) == 200
        metrics = server.request("GET", "sys/metrics", params={"format": "prometheus"})
        failures = re.search(r"^mssm_audit_failures_total (\S+)$", metrics.text, re.M)
        assert failures is not None
        assert float(failures.group(1)) >= 1
    finally:
        server.stop()
    first = lines(directory / "a.log")[0]
    assert first["type"] == "file_start"
    assert first["seq"] > 1


def test_checkpoint_needs_sudo(traffic: Traffic) -> None:
    server = traffic.server
    policy = 'path "sys/audit/checkpoint" { capabilities = ["read"] }'
    server.request("PUT", "sys/policies/acl/cp-read", json={"policy": policy})
    token = server.request(
        "POST", "auth/token/create", json={"policies": ["cp-read"]}
    ).json()["auth"]["client_token"]
    assert server.request("GET", "sys/audit/checkpoint", token=token).status_code == 403


def test_list_shows_declared_device(traffic: Traffic) -> None:
    devices = traffic.server.request("GET", "sys/audit").json()
    assert devices["file/"]["options"] == {"file_path": str(traffic.log)}
    assert devices["data"]["file/"] == devices["file/"]
