"""KV behaviour that real clients broke on: reads of deleted and destroyed
versions, v1-style paths on a v2 mount, the mount root, custom metadata
limits and delete_version_after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import hvac
import pytest
from hvac.exceptions import InvalidPath

from tests.e2e.fresh import start_initialised
from tests.server import ServerProcess

V1_WARNING = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the "
    "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv "
    "{verb}' for this operation."
)
ROOT_WARNING = "Non-listing operations on the root of a K/V v2 mount are not supported."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_initialised(tmp_path_factory.mktemp("kv-cases"), 1, 1)
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    server.request(
        "POST", "sys/mounts/kv1", json={"type": "kv", "options": {"version": "1"}}
    )
    yield server
    server.stop()


def write(server: ServerProcess, key: str, data: dict) -> None:
    response = server.request("POST", f"secret/data/{key}", json={"data": data})
    assert response.status_code == 200, response.text


class TestDeletedVersions:
    @pytest.fixture(scope="class")
    @classmethod
    def deleted(cls, server: ServerProcess) -> ServerProcess:
        write(server, "k", {"v": "1"})
        write(server, "k", {"v": "2"})
        assert server.request("DELETE", "secret/data/k").status_code == 204
        return server

    def test_latest_deleted_is_404_with_metadata(self, deleted: ServerProcess) -> None:
        response = deleted.request("GET", "secret/data/k")
        assert response.status_code == 404
        data = response.json()["data"]
        assert data["data"] is None
        assert data["metadata"]["version"] == 2
        assert data["metadata"]["deletion_time"] != ""
        assert data["metadata"]["destroyed"] is False

    def test_older_version_still_readable(self, deleted: ServerProcess) -> None:
        response = deleted.request("GET", "secret/data/k?version=1")
        assert response.status_code == 200
        assert response.json()["data"]["data"] == {"v": "1"}

    def test_metadata_shows_deletion(self, deleted: ServerProcess) -> None:
        meta = deleted.request("GET", "secret/metadata/k").json()["data"]
        assert meta["current_version"] == 2
        assert meta["versions"]["2"]["deletion_time"] != ""
        assert meta["versions"]["1"]["deletion_time"] == ""

    def test_hvac_returns_or_raises(self, deleted: ServerProcess) -> None:
        client = hvac.Client(url=deleted.url, token=deleted.root_token)
        kv = client.secrets.kv.v2
        body = kv.read_secret_version(path="k", raise_on_deleted_version=False)
        assert body["data"]["data"] is None
        assert body["data"]["metadata"]["version"] == 2
        with pytest.raises(InvalidPath):
            kv.read_secret_version(path="k", raise_on_deleted_version=True)

    def test_destroy_then_undelete_stays_destroyed(
        self, deleted: ServerProcess
    ) -> None:
        body = {"versions": [2]}
        assert deleted.request("POST", "secret/destroy/k", json=body).status_code == 204
        destroyed = deleted.request("GET", "secret/data/k")
        assert destroyed.status_code == 404
        assert destroyed.json()["data"]["metadata"]["destroyed"] is True

        assert (
            deleted.request("POST", "secret/undelete/k", json=body).status_code == 204
        )
        again = deleted.request("GET", "secret/data/k")
        assert again.status_code == 404
        assert again.json()["data"]["data"] is None
        assert again.json()["data"]["metadata"]["destroyed"] is True


class TestVersionedPaths:
    @pytest.mark.parametrize(
        ("method", "verb"),
        [("PUT", "put"), ("GET", "get"), ("LIST", "list"), ("DELETE", "delete")],
    )
    def test_v1_style_path_on_v2_mount(
        self, server: ServerProcess, method: str, verb: str
    ) -> None:
        body = {"password": "P1"} if method == "PUT" else None
        response = server.request(method, "secret/app", json=body)
        message = V1_WARNING.format(verb=verb)

        assert response.status_code == 404
        assert response.json()["warnings"] == [message]
        assert response.json()["errors"] == [message]
        assert server.request("GET", "secret/data/app").status_code == 404

    def test_doubled_data_segment_is_a_literal_key(self, server: ServerProcess) -> None:
        response = server.request(
            "POST", "secret/data/data/app", json={"data": {"a": "1"}}
        )
        assert response.status_code == 200
        assert server.request("GET", "secret/data/app").status_code == 404
        nested = server.request("GET", "secret/data/data/app").json()["data"]["data"]
        assert nested == {"a": "1"}

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "secret/data"),
            ("GET", "secret/metadata"),
            ("DELETE", "secret/metadata"),
            ("POST", "secret/metadata"),
        ],
    )
    def test_mount_root_operations(
        self, server: ServerProcess, method: str, path: str
    ) -> None:
        body = {"data": {"a": "1"}} if method == "POST" else None
        response = server.request(method, path, json=body)
        assert response.status_code == 404
        assert response.json()["warnings"] == [ROOT_WARNING]
        assert response.json()["errors"] == [ROOT_WARNING]

    def test_list_at_mount_root_works(self, server: ServerProcess) -> None:
        write(server, "listed", {"a": "1"})
        response = server.request("LIST", "secret/metadata")
        assert response.status_code == 200
        assert "listed" in response.json()["data"]["keys"]

    def test_ui_mounts_describes_v2_mount(self, server: ServerProcess) -> None:
        response = server.request("GET", "sys/internal/ui/mounts/secret/app")
        assert response.status_code == 200
        data = response.json()["data"]
        assert data["path"] == "secret/"
        assert data["type"] == "kv"
        assert data["options"]["version"] == "2"

    def test_ui_mounts_with_restricted_token(self, server: ServerProcess) -> None:
        rule = 'path "secret/data/app" { capabilities = ["read"] }'
        policy = server.request(
            "PUT", "sys/policies/acl/app-read", json={"policy": rule}
        )
        assert policy.status_code == 204
        created = server.request(
            "POST", "auth/token/create", json={"policies": ["app-read"]}
        )
        token = created.json()["auth"]["client_token"]

        response = server.request(
            "GET", "sys/internal/ui/mounts/secret/app", token=token
        )
        assert response.status_code == 200
        assert response.json()["data"]["path"] == "secret/"
        assert response.json()["data"]["options"]["version"] == "2"
        other = server.request("GET", "sys/internal/ui/mounts/kv1/x", token=token)
        assert other.status_code == 403
        missing = server.request(
            "GET", "sys/internal/ui/mounts/nosuchmount/x", token=token
        )
        assert missing.status_code == 403
        no_token = server.request(
            "GET", "sys/internal/ui/mounts/secret/app", token=None
        )
        assert no_token.status_code == 403

    def test_ui_mounts_unknown_mount_is_403(self, server: ServerProcess) -> None:
        response = server.request("GET", "sys/internal/ui/mounts/nosuchmount/x")
        assert response.status_code == 403

    def test_v1_mount_keeps_data_segment_literally(self, server: ServerProcess) -> None:
        body = {"data": {"a": "1"}}
        assert server.request("POST", "kv1/data/app", json=body).status_code == 204
        listed = server.request("LIST", "kv1/")
        assert listed.json()["data"]["keys"] == ["data/"]
        assert listed.json()["warnings"] is None
        read = server.request("GET", "kv1/data/app").json()
        assert read["data"] == {"data": {"a": "1"}}
        assert server.request("GET", "kv1/data/app/versions").status_code == 404


class TestCustomMetadata:
    @pytest.mark.parametrize(
        ("custom", "problem"),
        [
            ({f"k{i}": "v" for i in range(65)}, "at most 64 keys, got 65"),
            ({"k" * 129: "v"}, "is 129 bytes, the maximum is 128"),
            ({"k": "v" * 513}, "is 513 bytes, the maximum is 512"),
            ({"k": ""}, "value for key 'k' must not be empty"),
            ({"k": "a\nb"}, "non-printable characters"),
            ({"n": 5}, "value of key 'n' must be a string"),
        ],
    )
    def test_invalid_custom_metadata(
        self, server: ServerProcess, custom: dict, problem: str
    ) -> None:
        path = "secret/metadata/custom"
        server.request("POST", path, json={"custom_metadata": {"kept": "yes"}})
        response = server.request("POST", path, json={"custom_metadata": custom})

        assert response.status_code == 400
        message = response.json()["errors"][0]
        assert message.startswith("custom_metadata validation failed")
        assert problem in message
        meta = server.request("GET", path).json()["data"]
        assert meta["custom_metadata"] == {"kept": "yes"}

    def test_every_problem_listed(self, server: ServerProcess) -> None:
        custom = {"k" * 129: "v", "n": "a\nb", "e": ""}
        response = server.request(
            "POST", "secret/metadata/many", json={"custom_metadata": custom}
        )
        message = response.json()["errors"][0]
        assert "129 bytes" in message
        assert "non-printable" in message
        assert "must not be empty" in message

    def test_largest_valid_map(self, server: ServerProcess) -> None:
        custom = {f"{i:03d}" + "k" * 125: "v" * 512 for i in range(64)}
        path = "secret/metadata/full"
        response = server.request("POST", path, json={"custom_metadata": custom})
        assert response.status_code == 204
        meta = server.request("GET", path).json()["data"]
        assert meta["custom_metadata"] == custom


class TestDeleteVersionAfter:
    def test_version_expires_and_undeletes(self, server: ServerProcess) -> None:
        path = "secret/metadata/tmp"
        server.request("POST", path, json={"delete_version_after": "3s"})
        write(server, "tmp", {"v": "1"})

        fresh = server.request("GET", "secret/data/tmp")
        assert fresh.status_code == 200
        deletion = fresh.json()["data"]["metadata"]["deletion_time"]
        meta = server.request("GET", path).json()["data"]
        assert meta["versions"]["1"]["deletion_time"] == deletion
        assert deletion > fresh.json()["data"]["metadata"]["created_time"]

        time.sleep(4)
        expired = server.request("GET", "secret/data/tmp")
        assert expired.status_code == 404
        assert expired.json()["data"]["metadata"]["deletion_time"] == deletion

        body = {"versions": [1]}
        assert (
            server.request("POST", "secret/undelete/tmp", json=body).status_code == 204
        )
        assert server.request("GET", "secret/data/tmp").status_code == 200

    def test_engine_and_key_levels(self, server: ServerProcess) -> None:
        config = {"delete_version_after": "1h"}
        assert server.request("POST", "secret/config", json=config).status_code == 204
        try:
            path = "secret/metadata/k2"
            response = server.request("POST", path, json={"delete_version_after": "2h"})
            assert response.status_code == 204
            write(server, "k2", {"v": "1"})
            version = server.request("GET", "secret/data/k2").json()["data"]["metadata"]
            assert version["deletion_time"] != ""
            meta = server.request("GET", path).json()["data"]
            assert meta["delete_version_after"] == "2h0m0s"
            created = _seconds(version["created_time"])
            # The engine's 1h is shorter than the key's 2h, so it applies.
            assert abs(_seconds(version["deletion_time"]) - created - 3600) < 1

            negative = server.request(
                "POST", path, json={"delete_version_after": "-1s"}
            )
            assert negative.status_code == 400
            garbage = server.request("POST", path, json={"delete_version_after": "abc"})
            assert garbage.status_code == 400
            assert "delete_version_after" in garbage.json()["errors"][0]
        finally:
            server.request("POST", "secret/config", json={"delete_version_after": "0s"})

    def test_config_negative_switches_off(self, server: ServerProcess) -> None:
        config = {"delete_version_after": "-1s"}
        assert server.request("POST", "secret/config", json=config).status_code == 204
        read = server.request("GET", "secret/config").json()["data"]
        assert read["delete_version_after"] == "0s"


def _seconds(rfc3339: str) -> float:
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(whole + "+00:00")
    return moment.timestamp() + float("0." + (fraction or "0"))
