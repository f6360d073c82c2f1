"""Init, seal, unseal and rekey over HTTP: which paths respond while sealed, how
bad shares are reported, and how the rekey nonce guards the operation."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
import requests

from tests.e2e.fresh import start_fresh, start_initialised
from tests.server import ServerProcess

SEALED_ERROR = {"errors": ["Vault is sealed"]}
# Paths, sys/ included, that must all be 503 while sealed.
GUARDED = [
    ("GET", "sys/mounts"),
    ("POST", "sys/mounts/other"),
    ("GET", "sys/mounts/secret/tune"),
    ("GET", "sys/key-status"),
    ("POST", "sys/rotate"),
    ("PUT", "sys/seal"),
    ("GET", "sys/rekey/init"),
    ("PUT", "sys/rekey/update"),
    ("GET", "sys/leader"),
    ("GET", "sys/metrics"),
    ("GET", "sys/policies/acl"),
    ("GET", "sys/internal/ui/mounts/secret"),
    ("GET", "sys/nonexistent"),
    ("GET", "auth/token/lookup-self"),
    ("GET", "secret/data/k"),
    ("LIST", "secret/metadata/"),
    ("DELETE", "secret/metadata/k"),
    ("GET", "nosuchmount/x"),
]


def flip_digit(share: str) -> str:
    """Change one hex digit of a share, keeping it valid hex."""
    return share[:10] + ("1" if share[10] == "0" else "0") + share[11:]


def unseal(server: ServerProcess, body: dict) -> requests.Response:
    return server.request("PUT", "sys/unseal", token=None, json=body)


def seal_status(server: ServerProcess) -> dict:
    return server.request("GET", "sys/seal-status", token=None).json()


@pytest.fixture(scope="module")
def sealed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_initialised(tmp_path_factory.mktemp("sealed"), 5, 3)
    body = {"type": "kv", "options": {"version": "2"}}
    server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
    server.request("POST", "secret/data/k", json={"data": {"v": "1"}})
    server.request("PUT", "sys/seal").raise_for_status()
    yield server
    server.stop()


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize("with_token", [True, False])
def test_sealed_paths_are_503(
    sealed_server: ServerProcess, method: str, path: str, with_token: bool
) -> None:
    token = "" if with_token else None
    response = sealed_server.request(method, path, token=token)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == SEALED_ERROR


def test_sealed_server_answers_status_paths(sealed_server: ServerProcess) -> None:
    status = seal_status(sealed_server)
    assert status["sealed"] is True
    assert status["initialized"] is True
    init = sealed_server.request("GET", "sys/init", token=None)
    assert init.json() == {"initialized": True}
    health = sealed_server.request("GET", "sys/health", token=None)
    assert health.status_code == 503
    assert health.json()["sealed"] is True
    custom = sealed_server.request("GET", "sys/health?sealedcode=299", token=None)
    assert custom.status_code == 299


def test_init_on_initialised_sealed_server_is_400(sealed_server: ServerProcess) -> None:
    body = {"secret_shares": 1, "secret_threshold": 1}
    response = sealed_server.request("PUT", "sys/init", token=None, json=body)
    assert response.status_code == 400
    assert response.json() == {"errors": ["Vault is already initialized"]}


def test_uninitialised_server(tmp_path: Path) -> None:
    server = start_fresh(tmp_path)
    try:
        assert server.request("GET", "sys/init", token=None).json() == {
            "initialized": False
        }
        status = seal_status(server)
        assert status["initialized"] is False
        assert status["sealed"] is True
        assert (status["t"], status["n"]) == (0, 0)
        assert server.request("GET", "sys/health", token=None).status_code == 501
        assert server.request("GET", "sys/mounts", token=None).status_code == 503
        response = unseal(server, {"key": "00" * 33})
        assert response.status_code == 400

        server.init_and_unseal(5, 3)
        again = server.request(
            "PUT",
            "sys/init",
            token=None,
            json={"secret_shares": 1, "secret_threshold": 1},
        )
        assert again.status_code == 400
        assert server.request("GET", "sys/init", token=None).json() == {
            "initialized": True
        }
        assert server.request("GET", "sys/health", token=None).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("shares", "threshold", "message"),
    [
        (0, 0, "secret_shares"),
        (3, 4, "threshold"),
        (3, 1, "threshold must be greater than one"),
        ("five", 3, "'secret_shares'"),
        (256, 3, "secret_shares"),
    ],
)
def test_init_rejects_bad_share_counts(
    tmp_path: Path, shares: object, threshold: object, message: str
) -> None:
    server = start_fresh(tmp_path)
    try:
        body = {"secret_shares": shares, "secret_threshold": threshold}
        response = server.request("PUT", "sys/init", token=None, json=body)
        assert response.status_code == 400
        assert message in response.json()["errors"][0]
        assert server.request("GET", "sys/init", token=None).json() == {
            "initialized": False
        }
    finally:
        server.stop()


class TestUnsealShares:
    """Repeated, wrong and badly encoded shares, and reset."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(
        cls, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        server = start_initialised(tmp_path_factory.mktemp("unseal"), 5, 3)
        server.request("PUT", "sys/seal").raise_for_status()
        yield server
        server.stop()

    def test_repeated_share_counts_once(self, server: ServerProcess) -> None:
        k1 = server.keys[0]
        first = unseal(server, {"key": k1})
        again = unseal(server, {"key": k1})
        k1_base64 = base64.b64encode(bytes.fromhex(k1)).decode()
        as_base64 = unseal(server, {"key": k1_base64})

        for response in (first, again, as_base64):
            assert response.status_code == 200
            assert response.json()["progress"] == 1
            assert response.json()["sealed"] is True

    def test_wrong_share_at_threshold_resets(self, server: ServerProcess) -> None:
        nonce_before = seal_status(server)["nonce"]
        assert unseal(server, {"key": server.keys[1]}).json()["progress"] == 2
        wrong = unseal(server, {"key": flip_digit(server.keys[2])})

        assert wrong.status_code == 400
        assert wrong.json() == {"errors": ["Unseal failed, invalid key"]}
        status = seal_status(server)
        assert status["sealed"] is True
        assert status["progress"] == 0
        assert status["nonce"] == ""
        assert nonce_before != ""

    @pytest.mark.parametrize("bad", ["not*valid*encoding", "AAAA", "", "00" * 40, 42])
    def test_badly_encoded_share_is_400(
        self, server: ServerProcess, bad: object
    ) -> None:
        unseal(server, {"key": server.keys[0]})
        response = unseal(server, {"key": bad})

        assert response.status_code == 400
        assert "'key'" in response.json()["errors"][0]
        assert seal_status(server)["progress"] == 1

    def test_reset_needs_no_key(self, server: ServerProcess) -> None:
        unseal(server, {"key": server.keys[0]})
        response = unseal(server, {"reset": True})

        assert response.status_code == 200
        assert response.json()["progress"] == 0
        assert seal_status(server)["progress"] == 0
        assert seal_status(server)["nonce"] == ""

    def test_missing_key_is_400(self, server: ServerProcess) -> None:
        response = unseal(server, {})
        assert response.status_code == 400
        assert response.json()["errors"] == [
            "'key' must be specified in request body as JSON, or 'reset' set to true"
        ]

    def test_hvac_unseal_then_extra_share(self, server: ServerProcess) -> None:
        client = hvac.Client(url=server.url)
        for index in (0, 3, 4):
            result = client.sys.submit_unseal_key(server.keys[index])
        assert result["sealed"] is False

        extra = unseal(server, {"key": server.keys[1]})
        assert extra.status_code == 200
        assert extra.json()["sealed"] is False
        assert extra.json()["progress"] == 0
        assert seal_status(server)["sealed"] is False


def restart_with_listener_option(server: ServerProcess, option: str) -> None:
    """Stop server, add a [listener] option to its config, and start it."""
    server.stop()
    assert server.config_path is not None
    text = server.config_path.read_text().replace(
        "tls_disable = true\n", f"tls_disable = true\n{option}\n"
    )
    server.config_path.write_text(text)
    server.start()


class TestRekey:
    """The rekey flow on one node, with the unauthenticated rekey endpoints
    turned off, so that a sudo token is required as newer Vault releases do."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(
        cls, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        server = start_fresh(tmp_path_factory.mktemp("rekey"))
        restart_with_listener_option(server, "disable_unauthed_rekey_endpoints = true")
        server.init_and_unseal(3, 2)
        body = {"type": "kv", "options": {"version": "2"}}
        server.request("POST", "sys/mounts/secret", json=body).raise_for_status()
        server.request("POST", "secret/data/kept", json={"data": {"v": "before"}})
        yield server
        server.stop()

    def rekey_init(self, server: ServerProcess, shares: int, threshold: int):
        body = {"secret_shares": shares, "secret_threshold": threshold}
        return server.request("PUT", "sys/rekey/init", json=body)

    def update(self, server: ServerProcess, body: dict) -> requests.Response:
        return server.request("PUT", "sys/rekey/update", json=body)

    def test_rekey_needs_token_when_disabled(self, server: ServerProcess) -> None:
        response = server.request("GET", "sys/rekey/init", token=None)
        assert response.status_code == 403
        cancel = server.request("DELETE", "sys/rekey/init", token=None)
        assert cancel.status_code == 403

    def test_init_returns_nonce(self, server: ServerProcess) -> None:
        started = self.rekey_init(server, 5, 3)
        assert started.status_code == 200
        body = started.json()
        assert body["started"] is True
        assert body["nonce"] != ""
        assert (body["t"], body["n"]) == (3, 5)
        assert (body["progress"], body["required"]) == (0, 2)
        status = server.request("GET", "sys/rekey/init").json()
        assert status["nonce"] == body["nonce"]

    def test_second_init_is_rejected(self, server: ServerProcess) -> None:
        response = self.rekey_init(server, 4, 2)
        assert response.status_code == 400
        assert response.json() == {"errors": ["rekey already in progress"]}
        status = server.request("GET", "sys/rekey/init").json()
        assert (status["t"], status["n"]) == (3, 5)

    def test_update_checks_nonce(self, server: ServerProcess) -> None:
        nonce = server.request("GET", "sys/rekey/init").json()["nonce"]
        k1 = server.keys[0]
        missing = self.update(server, {"key": k1})
        wrong = self.update(server, {"key": k1, "nonce": "wrong"})
        non_ascii = self.update(server, {"key": k1, "nonce": "nonce-é"})
        assert non_ascii.status_code == 400
        assert missing.status_code == 400
        assert "nonce" in missing.json()["errors"][0]
        assert wrong.status_code == 400
        assert server.request("GET", "sys/rekey/init").json()["progress"] == 0

        right = self.update(server, {"key": k1, "nonce": nonce})
        assert right.json()["progress"] == 1
        repeated = self.update(server, {"key": k1, "nonce": nonce})
        assert repeated.status_code == 400
        assert server.request("GET", "sys/rekey/init").json()["progress"] == 1

    def test_wrong_share_resets_progress(self, server: ServerProcess) -> None:
        nonce = server.request("GET", "sys/rekey/init").json()["nonce"]
        wrong = self.update(server, {"key": flip_digit(server.keys[1]), "nonce": nonce})
        assert wrong.status_code == 400
        assert "invalid key" in wrong.json()["errors"][0]
        assert server.request("GET", "sys/rekey/init").json()["progress"] == 0

    def test_cancel_needs_nonce(self, server: ServerProcess) -> None:
        nonce = server.request("GET", "sys/rekey/init").json()["nonce"]
        no_body = server.request("DELETE", "sys/rekey/init")
        assert no_body.status_code == 400
        assert no_body.json() == {
            "errors": ["nonce required: pass the nonce from sys/rekey/init"]
        }
        wrong = server.request("DELETE", "sys/rekey/init", json={"nonce": "wrong"})
        assert wrong.status_code == 400
        accented = server.request("DELETE", "sys/rekey/init", json={"nonce": "é"})
        assert accented.status_code == 400
        right = server.request("DELETE", "sys/rekey/init", json={"nonce": nonce})
        assert right.status_code == 204
        assert server.request("GET", "sys/rekey/init").json()["started"] is False

    def test_complete_rekey_replaces_shares(self, server: ServerProcess) -> None:
        nonce = self.rekey_init(server, 5, 3).json()["nonce"]
        self.update(server, {"key": server.keys[0], "nonce": nonce})
        done = self.update(server, {"key": server.keys[1], "nonce": nonce})

        assert done.status_code == 200
        body = done.json()
        assert body["complete"] is True
        assert len(body["keys"]) == 5
        assert len(body["keys_base64"]) == 5
        status = seal_status(server)
        assert (status["t"], status["n"]) == (3, 5)

        old_keys, server.keys = server.keys, body["keys"]
        server.request("PUT", "sys/seal").raise_for_status()
        unseal(server, {"key": old_keys[0]})
        unseal(server, {"key": old_keys[1]})
        old = unseal(server, {"key": old_keys[2]})
        assert old.status_code == 400
        assert old.json() == {"errors": ["Unseal failed, invalid key"]}
        assert seal_status(server)["progress"] == 0

        for key in body["keys"][2:5]:
            unseal(server, {"key": key})
        assert seal_status(server)["sealed"] is False
        value = server.request("GET", "secret/data/kept").json()["data"]["data"]
        assert value == {"v": "before"}


def test_classic_rekey_without_token_by_default(tmp_path: Path) -> None:
    """The unseal-key quorum authorises rekey, as in Vault, unless the
    listener sets disable_unauthed_rekey_endpoints = true."""
    server = start_fresh(tmp_path)
    try:
        server.init_and_unseal(1, 1)
        body = {"secret_shares": 1, "secret_threshold": 1}
        started = server.request("PUT", "sys/rekey/init", token=None, json=body)
        assert started.status_code == 200
        nonce = started.json()["nonce"]
        done = server.request(
            "PUT",
            "sys/rekey/update",
            token=None,
            json={"key": server.keys[0], "nonce": nonce},
        )
        assert done.json()["complete"] is True
    finally:
        server.stop()
