"""Hostile input against the transit engine through the real server.

The cases are values that overflow, batches that request impossible
statuses, version minimums that reach a pending version, forged backups and
key names that are not path segments. Malleable tokens, rotation under
concurrent signing and secrets in the log are covered too.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.server import ServerProcess

HELLO = base64.b64encode(b"hello").decode()
# Go's time.Duration maximum in whole seconds, as Vault accepts durations.
MAX_DURATION = 9223372036
ARABIC_ONE = "\u0661"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(server: ServerProcess, path: str, body: dict | None = None):  # noqa: ANN201
    return server.request("POST", f"transit/{path}", json=body or {})


def data(answer) -> dict:  # noqa: ANN001
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def errors(answer) -> str:  # noqa: ANN001
    return " ".join(answer.json()["errors"])


def make_key(server: ServerProcess, kind: str, **options: object) -> str:
    name = unique(kind)
    data(post(server, f"keys/{name}", {"type": kind, **options}))
    return name


def key_read(server: ServerProcess, name: str) -> dict:
    return data(server.request("GET", f"transit/keys/{name}"))


def max_age(answer) -> int:  # noqa: ANN001
    return int(answer.headers["Cache-Control"].split("max-age=")[1])


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pending_key(server: ServerProcess) -> str:
    """An ed25519 key whose version 2 is published but starts signing in 1h."""
    name = make_key(server, "ed25519", publish_ahead="1h")
    data(post(server, f"keys/{name}/rotate"))
    return name


# -- durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "option", ["auto_rotate_period", "publish_ahead", "jwt_max_ttl", "jwks_max_age"]
)
def test_duration_above_maximum_is_400(dev_server: ServerProcess, option: str) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    answer = post(dev_server, f"keys/{name}/config", {option: 2**62})
    assert answer.status_code == 400
    assert option in errors(answer)
    assert key_read(dev_server, name)[option] != 2**62


def test_duration_maximum_accepted(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    body = {"auto_rotate_period": MAX_DURATION}
    info = data(post(dev_server, f"keys/{name}/config", body))
    assert info["auto_rotate_period"] == MAX_DURATION
    assert key_read(dev_server, name)["next_rotation_time"] != ""


def test_create_with_huge_period_is_400(dev_server: ServerProcess) -> None:
    name = unique("huge")
    body = {"type": "ed25519", "auto_rotate_period": 10**30}
    answer = post(dev_server, f"keys/{name}", body)
    assert answer.status_code == 400
    assert "auto_rotate_period" in errors(answer)
    assert dev_server.request("GET", f"transit/keys/{name}").status_code == 404


# -- batches -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [99999, -1, 600])
def test_failure_code_out_of_range(dev_server: ServerProcess, code: int) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    batch = [{"plaintext": HELLO}, {"plaintext": "!!"}]
    body = {"batch_input": batch, "partial_failure_response_code": code}
    answer = post(dev_server, f"encrypt/{name}", body)
    assert answer.status_code == 400
    assert "partial_failure_response_code" in errors(answer)


def test_partial_failure_code_used(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    batch = [{"plaintext": HELLO}, {"plaintext": "!!"}]
    body = {"batch_input": batch, "partial_failure_response_code": 207}
    answer = post(dev_server, f"encrypt/{name}", body)
    assert answer.status_code == 207
    results = answer.json()["data"]["batch_results"]
    assert results[0]["ciphertext"].startswith("vault:v1:")
    assert "invalid plaintext" in results[1]["error"]


def test_all_failed_batch_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    batch = [{"plaintext": "!!"}, {"plaintext": "??"}]
    body = {"batch_input": batch, "partial_failure_response_code": 207}
    answer = post(dev_server, f"encrypt/{name}", body)
    assert answer.status_code == 400
    assert len(answer.json()["data"]["batch_results"]) == 2


def test_encrypt_without_plaintext_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    answer = post(dev_server, f"encrypt/{name}", {})
    assert answer.status_code == 400
    assert errors(answer) == "missing plaintext to encrypt"


def test_bad_context_on_plain_key_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    body = {"plaintext": HELLO, "context": "!!"}
    answer = post(dev_server, f"encrypt/{name}", body)
    assert answer.status_code == 400
    assert "invalid context" in errors(answer)


# -- versions published ahead ------------------------------------------------------


def test_jwks_max_age_within_publish_ahead(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519", publish_ahead="60s")
    answer = dev_server.request("GET", f"transit/jwks/{name}", token=None)
    assert max_age(answer) <= 60


def test_min_decryption_on_pending_is_400(dev_server: ServerProcess) -> None:
    name = pending_key(dev_server)
    answer = post(dev_server, f"keys/{name}/config", {"min_decryption_version": 2})
    assert answer.status_code == 400
    assert "min_decryption_version 2" in errors(answer)

    token = data(post(dev_server, f"jwt/sign/{name}"))["token"]
    checked = data(post(dev_server, f"jwt/verify/{name}", {"token": token}))
    assert checked["valid"] is True
    assert key_read(dev_server, name)["min_decryption_version"] == 1


def test_min_encryption_on_pending_is_400(dev_server: ServerProcess) -> None:
    name = pending_key(dev_server)
    answer = post(dev_server, f"keys/{name}/config", {"min_encryption_version": 2})
    assert answer.status_code == 400
    assert "min_encryption_version 2" in errors(answer)
    assert data(post(dev_server, f"jwt/sign/{name}"))["key_version"] == 1


def test_sign_with_pending_version_is_400(dev_server: ServerProcess) -> None:
    name = pending_key(dev_server)
    body = {"input": HELLO, "key_version": 2}
    answer = post(dev_server, f"sign/{name}", body)
    assert answer.status_code == 400
    assert "published ahead" in errors(answer)


# -- restore -----------------------------------------------------------------------


def backup_of(server: ServerProcess) -> tuple[str, dict]:
    """Back up a rotated, trimmed ed25519 key; return its name and blob JSON."""
    name = make_key(server, "ed25519", exportable=True, allow_plaintext_backup=True)
    for _ in range(2):
        data(post(server, f"keys/{name}/rotate"))
    config = {"min_decryption_version": 2, "min_encryption_version": 2}
    data(post(server, f"keys/{name}/config", config))
    data(post(server, f"keys/{name}/trim", {"min_available_version": 2}))
    blob = data(server.request("GET", f"transit/backup/{name}"))["backup"]
    return name, json.loads(base64.b64decode(blob))


def restore(server: ServerProcess, name: str, blob: dict):  # noqa: ANN201
    encoded = base64.b64encode(json.dumps(blob).encode()).decode()
    return post(server, f"restore/{name}", {"backup": encoded})


def test_restore_round_trip(dev_server: ServerProcess) -> None:
    name, blob = backup_of(dev_server)
    copy = unique("copy")
    assert restore(dev_server, copy, blob).status_code == 204

    original = key_read(dev_server, name)
    restored = key_read(dev_server, copy)
    assert restored["keys"] == original["keys"]
    assert restored["min_available_version"] == 2
    signature = data(post(dev_server, f"sign/{copy}", {"input": HELLO}))["signature"]
    body = {"input": HELLO, "signature": signature}
    assert data(post(dev_server, f"verify/{name}", body))["valid"] is True


def corrupt_key_material(blob: dict) -> None:
    blob["key"]["versions"]["3"]["key"] = "AAAA"


def corrupt_latest(blob: dict) -> None:
    blob["key"]["latest_version"] = "x"


def corrupt_algorithm(blob: dict) -> None:
    blob["key"]["jwt_algorithm"] = "HS256"


def corrupt_name(blob: dict) -> None:
    blob["key"]["name"] = "../a/b"


def corrupt_versions(blob: dict) -> None:
    del blob["key"]["versions"]["2"]


def corrupt_time(blob: dict) -> None:
    blob["key"]["versions"]["3"]["creation_time"] = 1e300


def corrupt_period(blob: dict) -> None:
    blob["key"]["auto_rotate_period"] = 2**70


@pytest.mark.parametrize(
    ("corrupt", "field"),
    [
        (corrupt_key_material, "version 3 key"),
        (corrupt_latest, "latest_version"),
        (corrupt_algorithm, "jwt_algorithm"),
        (corrupt_versions, "version 2 is missing"),
        (corrupt_time, "version 3 creation_time"),
        (corrupt_period, "auto_rotate_period"),
    ],
)
def test_restore_rejects_bad_blob(
    dev_server: ServerProcess,
    corrupt,
    field: str,  # noqa: ANN001
) -> None:
    _, blob = backup_of(dev_server)
    corrupt(blob)
    target = unique("bad")
    answer = restore(dev_server, target, blob)
    assert answer.status_code == 400
    assert errors(answer).startswith("invalid backup: ")
    assert field in errors(answer)
    assert dev_server.request("GET", f"transit/keys/{target}").status_code == 404


def test_restore_rejects_name_in_blob(dev_server: ServerProcess) -> None:
    _, blob = backup_of(dev_server)
    corrupt_name(blob)
    encoded = base64.b64encode(json.dumps(blob).encode()).decode()
    answer = post(dev_server, "restore", {"backup": encoded})
    assert answer.status_code == 400
    assert "name must be" in errors(answer)


# -- key names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_name", ["a%0Ab", "a%00b", "a%20b", "%2E%2E", "%C3%BC", "-", "a:b", "a*"]
)
def test_bad_key_name_is_404(dev_server: ServerProcess, raw_name: str) -> None:
    make_key(dev_server, "ed25519")
    answer = post(dev_server, f"keys/{raw_name}", {"type": "ed25519"})
    assert answer.status_code == 404
    listed = data(dev_server.request("LIST", "transit/keys"))["keys"]
    assert urllib.parse.unquote(raw_name) not in listed


def test_dotted_key_name_accepted(dev_server: ServerProcess) -> None:
    name = unique("a.b") + "..c"
    data(post(dev_server, f"keys/{name}", {"type": "ed25519"}))
    assert key_read(dev_server, name)["name"] == name


# -- tokens and encodings ----------------------------------------------------------


def test_noncanonical_signature_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    token = data(post(dev_server, f"jwt/sign/{name}"))["token"]
    head, _, signature = token.rpartition(".")
    # 256 signature bytes leave 4 unused bits in the last character.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) ^ 1]
    answer = post(
        dev_server, f"jwt/verify/{name}", {"token": f"{head}.{signature[:-1]}{last}"}
    )
    assert answer.status_code == 400
    assert "signature is not base64url" in errors(answer)


def test_audience_list_with_number_rejected(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    kid = key_read(dev_server, name)["keys"]["1"]["kid"]
    header = b64url(json.dumps({"alg": "ES256", "kid": kid}).encode())
    claims = {"exp": int(time.time()) + 60, "aud": [5, "api"]}
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}"
    body = {
        "input": base64.b64encode(signing_input.encode()).decode(),
        "marshaling_algorithm": "jws",
    }
    signature = data(post(dev_server, f"sign/{name}", body))["signature"]
    token = f"{signing_input}.{signature.split(':')[2]}"
    checked = data(
        post(dev_server, f"jwt/verify/{name}", {"token": token, "audience": "api"})
    )
    assert checked["valid"] is False
    assert "aud claim" in checked["reason"]


@pytest.mark.parametrize("not_before", [3600, 2**70])
def test_not_before_past_ttl_is_400(dev_server: ServerProcess, not_before: int) -> None:
    name = make_key(dev_server, "ed25519")
    body = {"ttl": "1h", "not_before": not_before}
    answer = post(dev_server, f"jwt/sign/{name}", body)
    assert answer.status_code == 400
    assert "not_before" in errors(answer)


def test_not_before_within_ttl_accepted(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519")
    issued = data(
        post(dev_server, f"jwt/sign/{name}", {"ttl": "1h", "not_before": "30s"})
    )
    claims = json.loads(base64.urlsafe_b64decode(issued["token"].split(".")[1] + "=="))
    assert claims["nbf"] == claims["iat"] + 30


def test_non_ascii_digits_rejected(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048", exportable=True)
    signature = data(post(dev_server, f"sign/{name}", {"input": HELLO}))["signature"]
    relabelled = f"vault:v{ARABIC_ONE}:" + signature.split(":")[2]
    body = {"input": HELLO, "signature": relabelled}
    answer = post(dev_server, f"verify/{name}", body)
    assert answer.status_code == 400
    assert "version prefix" in errors(answer)

    path = f"transit/export/public-key/{name}/{ARABIC_ONE}"
    assert dev_server.request("GET", path).status_code == 400
    salted = post(
        dev_server, f"sign/{name}", {"input": HELLO, "salt_length": ARABIC_ONE}
    )
    assert salted.status_code == 400
    assert "salt_length" in errors(salted)


def test_unhashed_input_too_long_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    options = {"prehashed": True, "hash_algorithm": "none"}
    options["signature_algorithm"] = "pkcs1v15"
    longest = base64.b64encode(b"x" * 245).decode()
    data(post(dev_server, f"sign/{name}", {"input": longest, **options}))

    too_long = base64.b64encode(b"x" * 246).decode()
    answer = post(dev_server, f"sign/{name}", {"input": too_long, **options})
    assert answer.status_code == 400
    assert "at most 245 bytes, got 246" in errors(answer)


# -- concurrency and logs ----------------------------------------------------------


def test_rotate_while_signing(dev_server: ServerProcess) -> None:
    names = [make_key(dev_server, kind) for kind in ("ed25519", "ecdsa-p256", "hmac")]
    stop = time.monotonic() + 8
    issued: list[tuple[str, str]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def sign_loop(name: str) -> None:
        session = requests.Session()
        url = f"{dev_server.url}/v1/transit/jwt/sign/{name}"
        headers = {"X-Vault-Token": dev_server.root_token}
        while time.monotonic() < stop:
            answer = session.post(url, json={}, headers=headers, timeout=30)
            with lock:
                if answer.status_code == 200:
                    issued.append((name, answer.json()["data"]["token"]))
                else:
                    failures.append(answer.text)

    def rotate_loop(name: str) -> None:
        while time.monotonic() < stop:
            answer = post(dev_server, f"keys/{name}/rotate")
            if answer.status_code != 200:
                with lock:
                    failures.append(answer.text)
            time.sleep(0.05)

    jobs = [(sign_loop, n) for n in names for _ in range(6)]
    jobs += [(rotate_loop, n) for n in names]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for future in [pool.submit(job, name) for job, name in jobs]:
            future.result()

    assert failures == []
    assert len(issued) > 100
    for name, token in issued[:: max(1, len(issued) // 200)]:
        checked = data(post(dev_server, f"jwt/verify/{name}", {"token": token}))
        assert checked["valid"] is True, checked


def test_exported_keys_absent_from_log(dev_server: ServerProcess) -> None:
    secrets = []
    for kind in ("ed25519", "rsa-2048", "aes256-gcm96", "hmac"):
        name = make_key(dev_server, kind, exportable=True, allow_plaintext_backup=True)
        for export in ("signing-key", "encryption-key", "hmac-key"):
            answer = dev_server.request("GET", f"transit/export/{export}/{name}")
            if answer.status_code == 200:
                secrets += answer.json()["data"]["keys"].values()
        secrets.append(
            data(dev_server.request("GET", f"transit/backup/{name}"))["backup"]
        )
        if kind == "aes256-gcm96":
            plaintext = base64.b64encode(
                b"attack-plaintext-" + uuid.uuid4().bytes
            ).decode()
            data(post(dev_server, f"encrypt/{name}", {"plaintext": plaintext}))
            post(
                dev_server, f"encrypt/{name}", {"plaintext": plaintext, "context": "!!"}
            )
            secrets.append(plaintext)

    log = dev_server.log_path.read_text(errors="replace")
    for secret in secrets:
        for line in secret.splitlines():
            if "PRIVATE KEY" not in line and len(line) >= 16:
                assert line[:40] not in log
