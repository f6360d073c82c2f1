"""The details of Vault's HTTP API that clients branch on, checked on a
production server over raw HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.fresh import start_fresh, start_initialised
from tests.server import ServerProcess

JSON = "application/json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_initialised(tmp_path_factory.mktemp("api-details"), 1, 1)
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    yield server
    server.stop()


def assert_error(response: requests.Response, status: int) -> list[str]:
    """Check the error shape and return its messages."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert isinstance(body["errors"], list)
    return body["errors"]


def test_cas_mismatch_names_both_versions(server: ServerProcess) -> None:
    server.request("POST", "secret/data/cas", json={"data": {"v": "1"}})
    server.request("POST", "secret/data/cas", json={"data": {"v": "2"}})
    body = {"data": {"v": "3"}, "options": {"cas": 1}}
    errors = assert_error(server.request("POST", "secret/data/cas", json=body), 400)

    assert "check-and-set parameter did not match the current version" in errors[0]
    assert "cas=1" in errors[0]
    assert "current version=2" in errors[0]


def test_unknown_mount_is_404(server: ServerProcess) -> None:
    errors = assert_error(server.request("GET", "nosuchmount/key"), 404)
    assert errors == ["no handler for route 'nosuchmount/key'. route entry not found."]


def test_missing_token_is_403(server: ServerProcess) -> None:
    errors = assert_error(server.request("GET", "secret/data/x", token=None), 403)
    assert errors == ["permission denied"]


def test_unknown_token_is_403(server: ServerProcess) -> None:
    response = server.request("GET", "secret/data/x", token="hvs." + "A" * 24)
    assert assert_error(response, 403) == ["permission denied"]


def test_unknown_token_on_unknown_mount_is_403(server: ServerProcess) -> None:
    # Without a valid token nothing reveals which mounts exist.
    response = server.request("GET", "nosuchmount/key", token="hvs.bogus")
    assert_error(response, 403)


def test_bearer_token_is_accepted(server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {server.root_token}"}
    response = server.request("GET", "sys/mounts", token=None, headers=headers)
    assert response.status_code == 200
    assert "secret/" in response.json()["data"]


def test_malformed_json_is_400(server: ServerProcess) -> None:
    response = server.request("POST", "secret/data/x", data=b'{"data": {"a": "b"')
    errors = assert_error(response, 400)
    assert errors[0].startswith("failed to parse JSON input")


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"123", b"true"])
def test_non_object_body_is_400(server: ServerProcess, raw: bytes) -> None:
    errors = assert_error(server.request("POST", "secret/data/x", data=raw), 400)
    assert errors == ["failed to parse JSON input: the body must be a JSON object"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("secret/data/x", {"data": "not-an-object"}, "'data'"),
        ("secret/data/x", {"data": {}, "options": []}, "'options'"),
        ("secret/metadata/x", {"max_versions": "abc"}, "'max_versions'"),
        ("secret/metadata/x", {"cas_required": "maybe"}, "'cas_required'"),
        ("secret/metadata/x", {"delete_version_after": "2w"}, "delete_version_after"),
        ("secret/data/x", {"data": {}, "options": {"cas": "one"}}, "options.cas"),
        ("sys/mounts/secret/tune", {"max_lease_ttl": "1 hour"}, "max_lease_ttl"),
    ],
)
def test_wrong_field_type_names_field(
    server: ServerProcess, path: str, body: dict, field: str
) -> None:
    errors = assert_error(server.request("POST", path, json=body), 400)
    assert field in errors[0]


def test_rejected_writes_store_nothing(server: ServerProcess) -> None:
    for raw in (b'{"data": {"a": "b"', b"[]", b'{"data":"not-an-object"}'):
        server.request("POST", "secret/data/never", data=raw)
    assert server.request("GET", "secret/data/never").status_code == 404


def test_unknown_fields_named_in_warnings(server: ServerProcess) -> None:
    body = {"data": {"a": "1"}, "bogus": 1, "extra": "x"}
    response = server.request("POST", "secret/data/warned", json=body)
    assert response.status_code == 200
    warnings = response.json()["warnings"]
    assert warnings == ["Endpoint ignored these unrecognized parameters: [bogus extra]"]


def test_unknown_fields_on_empty_success_still_warn(server: ServerProcess) -> None:
    response = server.request("POST", "secret/metadata/warned", json={"colour": "red"})
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert response.json()["warnings"] == [
        "Endpoint ignored these unrecognized parameters: [colour]"
    ]


def test_errors_content_type_is_exact(server: ServerProcess) -> None:
    responses = [
        server.request("GET", "nosuchmount/x"),
        server.request("GET", "secret/data/x", token=None),
        server.request("POST", "secret/data/x", data=b"{"),
        server.request("GET", "secret/delete/x"),
        server.request("PATCH", "secret/data/x", json={"data": {}}),
    ]
    assert [a.status_code for a in responses] == [404, 403, 400, 405, 415]
    for response in responses:
        assert response.headers["Content-Type"] == JSON
        assert set(response.json()) == {"errors"}


def test_success_content_type_is_exact(server: ServerProcess) -> None:
    response = server.request("GET", "sys/mounts")
    assert response.headers["Content-Type"] == JSON


def test_empty_list_is_404(server: ServerProcess) -> None:
    listed = server.request("LIST", "secret/metadata/empty-folder/")
    assert assert_error(listed, 404) == []
    queried = server.request("GET", "secret/metadata/empty-folder/?list=true")
    assert assert_error(queried, 404) == []


def test_list_method_and_query_agree(server: ServerProcess) -> None:
    server.request("POST", "secret/data/listing/a", json={"data": {"x": "1"}})
    server.request("POST", "secret/data/listing/b/c", json={"data": {"x": "1"}})
    by_method = server.request("LIST", "secret/metadata/listing")
    by_query = server.request("GET", "secret/metadata/listing?list=true")
    assert by_method.json()["data"] == {"keys": ["a", "b/"]}
    assert by_query.json()["data"] == {"keys": ["a", "b/"]}


def test_empty_success_is_204(server: ServerProcess) -> None:
    responses = [
        server.request("POST", "sys/mounts/tmp204", json={"type": "kv"}),
        server.request("POST", "secret/metadata/s204", json={"max_versions": 2}),
        server.request("DELETE", "secret/metadata/s204"),
        server.request("DELETE", "sys/mounts/tmp204"),
        server.request("POST", "sys/rotate"),
    ]
    for response in responses:
        assert response.status_code == 204
        assert response.content == b""


def test_deleted_version_is_404_with_metadata(server: ServerProcess) -> None:
    server.request("POST", "secret/data/soft", json={"data": {"v": "1"}})
    server.request("DELETE", "secret/data/soft")
    response = server.request("GET", "secret/data/soft")

    assert response.status_code == 404
    assert response.headers["Content-Type"] == JSON
    body = response.json()
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["version"] == 1
    assert body["data"]["metadata"]["destroyed"] is False
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z",
        body["data"]["metadata"]["deletion_time"],
    )


def test_destroyed_version_is_404_with_metadata(server: ServerProcess) -> None:
    server.request("POST", "secret/data/hard", json={"data": {"v": "1"}})
    server.request("POST", "secret/destroy/hard", json={"versions": [1]})
    response = server.request("GET", "secret/data/hard")

    assert response.status_code == 404
    body = response.json()
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["destroyed"] is True
    assert body["data"]["metadata"]["deletion_time"] == ""


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("0s", "0s"),
        ("30m", "30m0s"),
        ("1h", "1h0m0s"),
        (5400, "1h30m0s"),
        ("45s", "45s"),
    ],
)
def test_delete_version_after_is_go_duration(
    server: ServerProcess, sent: object, shown: str
) -> None:
    body = {"delete_version_after": sent}
    assert server.request("POST", "secret/metadata/dva", json=body).status_code == 204
    meta = server.request("GET", "secret/metadata/dva").json()["data"]
    assert meta["delete_version_after"] == shown


def test_config_delete_version_after_is_go_duration(server: ServerProcess) -> None:
    server.request("POST", "secret/config", json={"delete_version_after": "90m"})
    try:
        config = server.request("GET", "secret/config").json()["data"]
        assert config["delete_version_after"] == "1h30m0s"
    finally:
        server.request("POST", "secret/config", json={"delete_version_after": "0s"})


def test_json_null_counts_as_unset(server: ServerProcess) -> None:
    server.request(
        "POST", "secret/metadata/nulls", json={"max_versions": 4, "cas_required": True}
    )
    body = {"max_versions": None, "cas_required": None, "custom_metadata": None}
    assert server.request("POST", "secret/metadata/nulls", json=body).status_code == 204
    meta = server.request("GET", "secret/metadata/nulls").json()["data"]
    assert meta["max_versions"] == 4
    assert meta["cas_required"] is True

    write = {"data": {"a": "1"}, "options": None}
    response = server.request("POST", "secret/data/plain-null", json=write)
    assert response.status_code == 200

    tune = {"default_lease_ttl": None, "description": None}
    assert (
        server.request("POST", "sys/mounts/secret/tune", json=tune).status_code == 204
    )


def test_key_status_term_rises_on_rotate(server: ServerProcess) -> None:
    before = server.request("GET", "sys/key-status").json()
    assert before["term"] == before["data"]["term"]
    assert server.request("POST", "sys/rotate").status_code == 204

    after = server.request("GET", "sys/key-status").json()
    assert after["term"] == before["term"] + 1
    assert after["data"]["term"] == before["term"] + 1
    assert after["install_time"].endswith("Z")


def test_oversized_body_is_413_and_server_answers(server: ServerProcess) -> None:
    big = b'{"data":{"a":"' + b"x" * (40 << 20) + b'"}}'
    response = server.request("POST", "secret/data/big", data=big)
    assert assert_error(response, 413) == ["http: request body too large"]

    started = time.monotonic()
    health = server.request("GET", "sys/health", token=None)
    assert health.status_code == 200
    assert time.monotonic() - started < 2
    assert server.request("GET", "secret/data/big").status_code == 404


def test_chunked_body_over_limit_is_413(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"data":{"a":"'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    response = server.request("POST", "secret/data/chunked", data=chunks())
    assert assert_error(response, 413) == ["http: request body too large"]
    assert server.request("GET", "secret/data/chunked").status_code == 404


def test_body_at_limit_is_accepted(server: ServerProcess) -> None:
    envelope = b'{"data":{"a":"' + b'"}}'
    body = envelope[:14] + b"y" * ((1 << 20) - len(envelope)) + envelope[14:]
    assert len(body) == 1 << 20
    assert server.request("POST", "secret/data/at-limit", data=body).status_code == 200


def test_configured_body_limit(tmp_path: Path) -> None:
    small = start_fresh(tmp_path, extra="")
    small.stop()
    config = small.config_path
    assert config is not None
    text = config.read_text().replace(
        "tls_disable = true\n", "tls_disable = true\nmax_request_size = 2048\n"
    )
    config.write_text(text)
    small.start()
    try:
        response = small.request("PUT", "sys/init", token=None, data=b" " * 2049)
        assert_error(response, 413)
        small.init_and_unseal(1, 1)
        assert small.request("GET", "sys/mounts").status_code == 200
    finally:
        small.stop()


def test_patch_needs_merge_patch_content_type(server: ServerProcess) -> None:
    server.request("POST", "secret/data/patched", json={"data": {"a": "1"}})
    wrong = server.request("PATCH", "secret/data/patched", json={"data": {"b": "2"}})
    errors = assert_error(wrong, 415)
    assert errors == [
        "PATCH requires Content-Type of application/merge-patch+json, "
        "provided application/json"
    ]

    headers = {"Content-Type": "application/merge-patch+json"}
    right = server.request(
        "PATCH", "secret/data/patched", data=b'{"data":{"b":"2"}}', headers=headers
    )
    assert right.status_code == 200
    read = server.request("GET", "secret/data/patched").json()["data"]["data"]
    assert read == {"a": "1", "b": "2"}


def test_request_id_on_every_response(server: ServerProcess) -> None:
    ok = server.request("GET", "sys/mounts")
    failed = server.request("GET", "nosuchmount/x")
    empty = server.request("POST", "sys/rotate")

    assert ok.headers["X-Request-Id"] == ok.json()["request_id"]
    assert failed.headers["X-Request-Id"]
    assert empty.headers["X-Request-Id"]
    assert len({ok.headers["X-Request-Id"], failed.headers["X-Request-Id"]}) == 2


def test_envelope_keys(server: ServerProcess) -> None:
    server.request("POST", "secret/data/env", json={"data": {"a": "1"}})
    body = server.request("GET", "secret/data/env").json()
    assert set(body) == {
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    }


def test_no_body_counts_as_empty(server: ServerProcess) -> None:
    response = server.request("POST", "sys/rotate", data=b"")
    assert response.status_code == 204
    null_body = server.request("POST", "sys/rotate", data=b"null")
    assert null_body.status_code == 204


def test_log_lines_carry_request_id(server: ServerProcess) -> None:
    response = server.request("POST", "sys/mounts/logged", json={"type": "kv"})
    assert response.status_code == 204
    request_id = response.headers["X-Request-Id"]

    lines = server.log_path.read_text().splitlines()
    mounted = [line for line in lines if "mounted kv engine at logged/" in line]
    assert len(mounted) == 1
    assert mounted[0].endswith(f"request_id={request_id}")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "secret/data/folder/", {"data": {"a": "1"}}),
        ("PUT", "secret/metadata/folder/", {"max_versions": 1}),
        ("POST", "sys/mounts/trailing/", {"type": "kv"}),
    ],
)
def test_write_to_folder_path_is_400(
    server: ServerProcess, method: str, path: str, body: dict
) -> None:
    response = server.request(method, path, json=body)
    assert assert_error(response, 400) == ["cannot write to a path ending in '/'"]
    assert server.request("GET", "secret/metadata/folder").status_code == 404
    assert "trailing/" not in server.request("GET", "sys/mounts").json()["data"]


def test_renew_self_without_body_counts_as_empty(server: ServerProcess) -> None:
    created = server.request(
        "POST", "auth/token/create", json={"ttl": "1h", "policies": ["default"]}
    )
    assert created.status_code == 200
    token = created.json()["auth"]["client_token"]

    response = server.request("POST", "auth/token/renew-self", token=token, data=b"")
    assert response.status_code == 200
    assert response.json()["auth"]["lease_duration"] == 3600
