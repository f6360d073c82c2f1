"""The mount table: overlapping paths in either order, protected prefixes,
tune ordering, and tune values after seal and restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.fresh import start_initialised
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_initialised(tmp_path_factory.mktemp("mounts"), 1, 1)
    yield server
    server.stop()


def mount_paths(server: ServerProcess) -> set[str]:
    return set(server.request("GET", "sys/mounts").json()["data"])


def enable(server: ServerProcess, path: str, body: dict | None = None):
    return server.request("POST", f"sys/mounts/{path}", json=body or {"type": "kv"})


def test_mount_under_existing_mount_is_rejected(server: ServerProcess) -> None:
    kv2 = {"type": "kv", "options": {"version": "2"}}
    assert enable(server, "team/app", kv2).status_code == 204
    before = mount_paths(server)
    response = enable(server, "team")

    assert response.status_code == 400
    assert response.json() == {"errors": ["path is already in use at team/app/"]}
    assert mount_paths(server) == before


def test_mount_above_existing_mount_is_rejected(server: ServerProcess) -> None:
    assert enable(server, "ops").status_code == 204
    before = mount_paths(server)
    response = enable(server, "ops/db")

    assert response.status_code == 400
    assert response.json() == {"errors": ["path is already in use at ops/"]}
    assert mount_paths(server) == before


def test_overlap_is_checked_per_segment(server: ServerProcess) -> None:
    enable(server, "team/app")
    assert enable(server, "teamwork").status_code == 204
    assert enable(server, "opsx").status_code == 204
    assert {"team/app/", "teamwork/", "opsx/"} <= mount_paths(server)


def test_same_path_twice_is_rejected(server: ServerProcess) -> None:
    enable(server, "twice")
    response = enable(server, "twice")
    assert response.status_code == 400
    assert response.json() == {"errors": ["path is already in use at twice/"]}


@pytest.mark.parametrize(
    "path", ["sys/extra", "auth/x", "identity/x", "audit/x", "cubbyhole", "sys", "auth"]
)
def test_protected_prefix_cannot_be_mounted(server: ServerProcess, path: str) -> None:
    before = mount_paths(server)
    response = enable(server, path)

    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("cannot mount at")
    assert mount_paths(server) == before


@pytest.mark.parametrize("path", ["sys", "cubbyhole", "identity", "auth/token"])
def test_protected_mount_cannot_be_unmounted(server: ServerProcess, path: str) -> None:
    response = server.request("DELETE", f"sys/mounts/{path}")
    assert response.status_code == 400
    assert "protected mount" in response.json()["errors"][0]
    assert "sys/" in mount_paths(server)


def test_disable_deletes_engine_data(server: ServerProcess) -> None:
    enable(server, "scratch", {"type": "kv", "options": {"version": "2"}})
    server.request("POST", "scratch/data/k", json={"data": {"v": "old"}})
    assert server.request("DELETE", "sys/mounts/scratch").status_code == 204
    assert server.request("GET", "scratch/data/k").status_code == 404

    enable(server, "scratch", {"type": "kv", "options": {"version": "2"}})
    assert server.request("GET", "scratch/data/k").status_code == 404
    assert server.request("LIST", "scratch/metadata/").status_code == 404


def test_longest_prefix_routes(server: ServerProcess) -> None:
    enable(server, "route", {"type": "kv", "options": {"version": "2"}})
    enable(server, "route2/inner", {"type": "kv"})
    server.request("POST", "route/data/inner/k", json={"data": {"from": "route"}})
    server.request("POST", "route2/inner/k", json={"from": "inner"})

    assert server.request("GET", "route/data/inner/k").json()["data"]["data"] == {
        "from": "route"
    }
    assert server.request("GET", "route2/inner/k").json()["data"] == {"from": "inner"}
    assert server.request("GET", "route2/other").status_code == 404


class TestTune:
    @pytest.fixture(scope="class")
    @classmethod
    def tuned(cls, server: ServerProcess) -> ServerProcess:
        enable(server, "tuned", {"type": "kv", "options": {"version": "2"}})
        body = {"max_lease_ttl": "1h"}
        response = server.request("POST", "sys/mounts/tuned/tune", json=body)
        assert response.status_code == 204
        return server

    def read(self, server: ServerProcess) -> dict:
        return server.request("GET", "sys/mounts/tuned/tune").json()["data"]

    def test_raise_default_and_max_together(self, tuned: ServerProcess) -> None:
        body = {"default_lease_ttl": "2h", "max_lease_ttl": "3h"}
        response = tuned.request("POST", "sys/mounts/tuned/tune", json=body)
        assert response.status_code == 204
        tune = self.read(tuned)
        assert (tune["default_lease_ttl"], tune["max_lease_ttl"]) == (7200, 10800)

    def test_default_above_max_is_rejected(self, tuned: ServerProcess) -> None:
        response = tuned.request(
            "POST", "sys/mounts/tuned/tune", json={"default_lease_ttl": "4h"}
        )
        assert response.status_code == 400
        assert "must not exceed max_lease_ttl" in response.json()["errors"][0]
        assert self.read(tuned)["default_lease_ttl"] == 7200

    def test_max_below_default_is_rejected(self, tuned: ServerProcess) -> None:
        response = tuned.request(
            "POST", "sys/mounts/tuned/tune", json={"max_lease_ttl": "30m"}
        )
        assert response.status_code == 400
        tune = self.read(tuned)
        assert tune["max_lease_ttl"] == 10800
        assert tune["default_lease_ttl"] <= tune["max_lease_ttl"]

    def test_rejected_tune_changes_nothing(self, tuned: ServerProcess) -> None:
        body = {"description": "changed", "options": {"version": "1"}}
        response = tuned.request("POST", "sys/mounts/tuned/tune", json=body)
        assert response.status_code == 400
        assert response.json() == {"errors": ["cannot downgrade mount from version 2"]}
        mount = tuned.request("GET", "sys/mounts/tuned").json()["data"]
        assert mount["description"] == ""
        assert mount["options"] == {"version": "2"}

    def test_tune_survives_seal_and_restart(self, tuned: ServerProcess) -> None:
        before_tune = self.read(tuned)
        before_mounts = tuned.request("GET", "sys/mounts").json()["data"]
        tuned.request("PUT", "sys/seal").raise_for_status()
        tuned.unseal()
        assert self.read(tuned) == before_tune

        tuned.stop()
        tuned.start()
        tuned.unseal()
        assert self.read(tuned) == before_tune
        assert tuned.request("GET", "sys/mounts").json()["data"] == before_mounts
