"""The hvac 2.x calls that applications and operators make against Vault,
unmodified, against a production MSSM server: each result is checked
against what was written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac.exceptions import InvalidPath, InvalidRequest

from tests.e2e.fresh import start_fresh
from tests.server import ServerProcess


class Cluster:
    """A server initialised through hvac, with the init result kept."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client = hvac.Client(url=server.url)
        self.initialized_before = self.client.sys.is_initialized()
        self.init_result: dict[str, Any] = self.client.sys.initialize(5, 3)
        self.initialized_after = self.client.sys.is_initialized()
        self.keys: list[str] = self.init_result["keys"]
        self.status_before_unseal = self.client.sys.read_seal_status()
        self.unseal_result = self.client.sys.submit_unseal_keys(self.keys[:3])
        self.client.token = self.init_result["root_token"]
        self.client.sys.enable_secrets_engine(
            "kv", path="secret", options={"version": "2"}
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = start_fresh(Path(tmp_path_factory.mktemp("hvac-core")))
    try:
        yield Cluster(server)
    finally:
        server.stop()


@pytest.fixture
def kv(cluster: Cluster) -> Any:
    return cluster.client.secrets.kv.v2


def test_is_initialized_before_and_after(cluster: Cluster) -> None:
    assert cluster.initialized_before is False
    assert cluster.initialized_after is True


def test_initialize_returns_shares_and_root_token(cluster: Cluster) -> None:
    result = cluster.init_result
    assert len(result["keys"]) == 5
    assert len(result["keys_base64"]) == 5
    assert len(set(result["keys"])) == 5
    assert re.fullmatch(r"hvs\.[A-Za-z0-9]{24}", result["root_token"])


def test_seal_status_after_init(cluster: Cluster) -> None:
    status = cluster.status_before_unseal
    assert status["initialized"] is True
    assert status["sealed"] is True
    assert status["t"] == 3
    assert status["n"] == 5
    assert status["progress"] == 0


def test_submit_unseal_keys_unseals(cluster: Cluster) -> None:
    assert cluster.unseal_result["sealed"] is False
    assert cluster.unseal_result["progress"] == 0
    assert cluster.client.sys.read_seal_status()["sealed"] is False


def test_enable_and_list_secrets_engines(cluster: Cluster) -> None:
    cluster.client.sys.enable_secrets_engine("kv", path="kv1")
    mounts = cluster.client.sys.list_mounted_secrets_engines()

    assert mounts["data"]["secret/"]["type"] == "kv"
    assert mounts["data"]["secret/"]["options"] == {"version": "2"}
    assert mounts["data"]["kv1/"]["type"] == "kv"
    assert mounts["secret/"]["type"] == "kv"
    assert "sys/" in mounts["data"]


def test_create_then_read_latest(kv: Any) -> None:
    written = kv.create_or_update_secret("app/pepper", {"pepper": "p-one"})
    read = kv.read_secret_version("app/pepper", raise_on_deleted_version=True)

    assert written["data"]["version"] == 1
    assert read["data"]["data"] == {"pepper": "p-one"}
    assert read["data"]["metadata"]["version"] == 1
    assert read["data"]["metadata"]["destroyed"] is False


def test_create_with_cas(kv: Any) -> None:
    kv.create_or_update_secret("cas/key", {"v": "1"}, cas=0)
    second = kv.create_or_update_secret("cas/key", {"v": "2"}, cas=1)
    assert second["data"]["version"] == 2

    with pytest.raises(InvalidRequest, match="check-and-set parameter did not match"):
        kv.create_or_update_secret("cas/key", {"v": "3"}, cas=1)
    latest = kv.read_secret_version("cas/key", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"v": "2"}


def test_read_given_version(kv: Any) -> None:
    kv.create_or_update_secret("versions/k", {"n": "first"})
    kv.create_or_update_secret("versions/k", {"n": "second"})

    first = kv.read_secret_version(
        "versions/k", version=1, raise_on_deleted_version=True
    )
    second = kv.read_secret_version(
        "versions/k", version=2, raise_on_deleted_version=True
    )
    assert first["data"]["data"] == {"n": "first"}
    assert first["data"]["metadata"]["version"] == 1
    assert second["data"]["data"] == {"n": "second"}


# hvac's own patch() reads without raise_on_deleted_version and warns.
@pytest.mark.filterwarnings("ignore:The raise_on_deleted_version:DeprecationWarning")
def test_patch_merges_into_new_version(kv: Any) -> None:
    kv.create_or_update_secret("patch/k", {"user": "app", "password": "old"})
    patched = kv.patch("patch/k", {"password": "new"})
    read = kv.read_secret_version("patch/k", raise_on_deleted_version=True)

    assert patched["data"]["version"] == 2
    assert read["data"]["data"] == {"user": "app", "password": "new"}


def test_list_secrets_keys_and_folders(kv: Any) -> None:
    kv.create_or_update_secret("tree/a", {"x": "1"})
    kv.create_or_update_secret("tree/b/c", {"x": "2"})

    listed = kv.list_secrets("tree")
    assert listed["data"]["keys"] == ["a", "b/"]
    with pytest.raises(InvalidPath):
        kv.list_secrets("no-such-folder")


def test_delete_latest_then_undelete(kv: Any) -> None:
    kv.create_or_update_secret("soft/k", {"v": "1"})
    kv.create_or_update_secret("soft/k", {"v": "2"})
    kv.delete_latest_version_of_secret("soft/k")

    deleted = kv.read_secret_version("soft/k", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["version"] == 2
    assert deleted["data"]["metadata"]["deletion_time"] != ""
    with pytest.raises(InvalidPath):
        kv.read_secret_version("soft/k", raise_on_deleted_version=True)

    kv.undelete_secret_versions("soft/k", versions=[2])
    restored = kv.read_secret_version("soft/k", raise_on_deleted_version=True)
    assert restored["data"]["data"] == {"v": "2"}
    assert restored["data"]["metadata"]["deletion_time"] == ""


def test_destroy_versions(kv: Any) -> None:
    kv.create_or_update_secret("gone/k", {"v": "1"})
    kv.create_or_update_secret("gone/k", {"v": "2"})
    kv.destroy_secret_versions("gone/k", versions=[1])

    # hvac hands back the 404 body only for a soft delete (deletion_time
    # set), so a destroyed version raises; its body still carries metadata.
    with pytest.raises(InvalidPath) as destroyed:
        kv.read_secret_version("gone/k", version=1, raise_on_deleted_version=False)
    assert destroyed.value.json["data"]["data"] is None
    assert destroyed.value.json["data"]["metadata"]["destroyed"] is True

    kv.undelete_secret_versions("gone/k", versions=[1])
    with pytest.raises(InvalidPath) as still:
        kv.read_secret_version("gone/k", version=1, raise_on_deleted_version=False)
    assert still.value.json["data"]["metadata"]["destroyed"] is True
    latest = kv.read_secret_version("gone/k", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"v": "2"}


def test_read_secret_metadata(kv: Any) -> None:
    kv.create_or_update_secret("meta/k", {"v": "1"})
    kv.create_or_update_secret("meta/k", {"v": "2"})
    meta = kv.read_secret_metadata("meta/k")["data"]

    assert meta["current_version"] == 2
    assert sorted(meta["versions"]) == ["1", "2"]
    assert meta["max_versions"] == 0
    assert meta["cas_required"] is False
    assert meta["delete_version_after"] == "0s"
    assert meta["custom_metadata"] is None


def test_update_metadata(kv: Any) -> None:
    kv.create_or_update_secret("meta/u", {"v": "1"})
    kv.update_metadata(
        "meta/u",
        max_versions=3,
        cas_required=True,
        delete_version_after="30m",
        custom_metadata={"owner": "payments"},
    )
    meta = kv.read_secret_metadata("meta/u")["data"]

    assert meta["max_versions"] == 3
    assert meta["cas_required"] is True
    assert meta["delete_version_after"] == "30m0s"
    assert meta["custom_metadata"] == {"owner": "payments"}
    with pytest.raises(InvalidRequest, match="check-and-set parameter required"):
        kv.create_or_update_secret("meta/u", {"v": "2"})


def test_delete_metadata_and_all_versions(kv: Any) -> None:
    kv.create_or_update_secret("wipe/k", {"v": "1"})
    kv.create_or_update_secret("wipe/k", {"v": "2"})
    kv.delete_metadata_and_all_versions("wipe/k")

    with pytest.raises(InvalidPath):
        kv.read_secret_metadata("wipe/k")
    with pytest.raises(InvalidPath):
        kv.read_secret_version("wipe/k", version=1, raise_on_deleted_version=True)


def test_seal_then_unseal_keeps_data(cluster: Cluster, kv: Any) -> None:
    kv.create_or_update_secret("seal/k", {"v": "kept"})
    cluster.client.sys.seal()
    assert cluster.client.sys.read_seal_status()["sealed"] is True
    assert cluster.client.sys.is_sealed() is True

    cluster.client.sys.submit_unseal_keys(cluster.keys[2:5])
    assert cluster.client.sys.read_seal_status()["sealed"] is False
    read = kv.read_secret_version("seal/k", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"v": "kept"}


def test_rekey_replaces_shares(cluster: Cluster, kv: Any) -> None:
    kv.create_or_update_secret("rekey/k", {"v": "kept"})
    started = cluster.client.sys.start_rekey(secret_shares=4, secret_threshold=2)
    assert started["started"] is True
    assert started["n"] == 4
    assert started["t"] == 2
    assert started["required"] == 3

    result = cluster.client.sys.rekey_multi(cluster.keys[:3], nonce=started["nonce"])
    assert result["complete"] is True
    assert len(result["keys"]) == 4
    assert len(result["keys_base64"]) == 4
    new_keys = result["keys"]

    cluster.client.sys.seal()
    with pytest.raises(InvalidRequest, match="invalid key"):
        cluster.client.sys.submit_unseal_keys(cluster.keys[:2])
    status = cluster.client.sys.read_seal_status()
    assert status["sealed"] is True
    assert status["t"] == 2
    assert status["n"] == 4

    cluster.client.sys.submit_unseal_keys(new_keys[1:3])
    cluster.keys = new_keys
    assert cluster.client.sys.read_seal_status()["sealed"] is False
    read = kv.read_secret_version("rekey/k", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"v": "kept"}
