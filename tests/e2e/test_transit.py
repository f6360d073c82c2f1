"""The transit engine through the real server: hvac's secrets.transit client
for every supported call, raw HTTP for the edge cases, and scheduled
rotation across a restart."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from pathlib import Path

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from tests.server import ServerProcess, start_production

HELLO = base64.b64encode(b"hello").decode()
HELLO_WORLD = "aGVsbG8gd29ybGQ="
SIGNING_TYPES = ["ed25519", "ecdsa-p256", "rsa-2048"]


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


def sign(server: ServerProcess, name: str, **body: object) -> dict:
    return data(post(server, f"sign/{name}", {"input": HELLO_WORLD, **body}))


def verify(server: ServerProcess, name: str, signature: str, **body: object):  # noqa: ANN201
    payload = {"input": HELLO_WORLD, "signature": signature, **body}
    return post(server, f"verify/{name}", payload)


# -- hvac: signing keys ------------------------------------------------------------


@pytest.mark.parametrize("kind", SIGNING_TYPES)
def test_hvac_signing_key_lifecycle(client: hvac.Client, kind: str) -> None:
    transit = client.secrets.transit
    name = unique(kind)
    transit.create_key(name, key_type=kind, exportable=True)
    read = transit.read_key(name)["data"]
    assert read["type"] == kind
    assert read["latest_version"] == 1
    assert read["supports_signing"] is True
    assert "public_key" in read["keys"]["1"]
    assert name in transit.list_keys()["data"]["keys"]

    signed = transit.sign_data(name, hash_input=HELLO)["data"]
    assert signed["signature"].startswith("vault:v1:")
    assert signed["key_version"] == 1
    checked = transit.verify_signed_data(
        name, hash_input=HELLO, signature=signed["signature"]
    )
    assert checked["data"]["valid"] is True

    transit.rotate_key(name)
    assert transit.read_key(name)["data"]["latest_version"] == 2
    exported = transit.export_key(name, key_type="signing-key", version="latest")
    assert list(exported["data"]["keys"]) == ["2"]

    # hvac rejects both fields in one call when they are equal.
    transit.update_key_configuration(name, min_encryption_version=2)
    transit.update_key_configuration(name, min_decryption_version=2)
    trimmed = transit.trim_key(name, min_version=2)["data"]
    assert list(trimmed["keys"]) == ["2"]
    assert trimmed["min_available_version"] == 2

    transit.update_key_configuration(name, deletion_allowed=True)
    transit.delete_key(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name)


@pytest.mark.parametrize("kind", SIGNING_TYPES)
def test_hvac_rotated_signature_verifies(client: hvac.Client, kind: str) -> None:
    transit = client.secrets.transit
    name = unique(kind)
    transit.create_key(name, key_type=kind)
    first = transit.sign_data(name, hash_input=HELLO)["data"]["signature"]
    transit.rotate_key(name)
    second = transit.sign_data(name, hash_input=HELLO)["data"]["signature"]
    assert second.startswith("vault:v2:")
    for signature in (first, second):
        answer = transit.verify_signed_data(name, hash_input=HELLO, signature=signature)
        assert answer["data"]["valid"] is True


def test_hvac_public_key_export(client: hvac.Client, dev_server: ServerProcess) -> None:
    # hvac's export_key accepts only private key types, so the public-key
    # path goes through its adapter.
    name = make_key(dev_server, "ecdsa-p256")
    answer = client.adapter.get(f"/v1/transit/export/public-key/{name}/1")
    pem = answer["data"]["keys"]["1"]
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)


def test_hvac_rejects_private_export(client: hvac.Client) -> None:
    name = unique("ed25519")
    client.secrets.transit.create_key(name, key_type="ed25519")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="not exportable"):
        client.secrets.transit.export_key(name, key_type="signing-key")


def test_hvac_delete_needs_permission(client: hvac.Client) -> None:
    name = unique("ecdsa")
    client.secrets.transit.create_key(name, key_type="ecdsa-p256")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed"):
        client.secrets.transit.delete_key(name)


# -- hvac: encryption ------------------------------------------------------------


def test_hvac_encrypt_decrypt_rewrap(client: hvac.Client) -> None:
    transit = client.secrets.transit
    name = unique("aes")
    transit.create_key(name, key_type="aes256-gcm96")
    encrypted = transit.encrypt_data(name, plaintext=HELLO)["data"]
    assert encrypted["ciphertext"].startswith("vault:v1:")
    decrypted = transit.decrypt_data(name, ciphertext=encrypted["ciphertext"])
    assert decrypted["data"]["plaintext"] == HELLO

    transit.rotate_key(name)
    rewrapped = transit.rewrap_data(name, ciphertext=encrypted["ciphertext"])["data"]
    assert rewrapped["ciphertext"].startswith("vault:v2:")
    assert rewrapped["key_version"] == 2
    again = transit.decrypt_data(name, ciphertext=rewrapped["ciphertext"])
    assert again["data"]["plaintext"] == HELLO


def test_hvac_data_key(client: hvac.Client) -> None:
    transit = client.secrets.transit
    name = unique("aes")
    transit.create_key(name, key_type="aes256-gcm96")
    plain = transit.generate_data_key(name, key_type="plaintext", bits=512)["data"]
    assert len(base64.b64decode(plain["plaintext"])) == 64
    opened = transit.decrypt_data(name, ciphertext=plain["ciphertext"])
    assert opened["data"]["plaintext"] == plain["plaintext"]
    wrapped = transit.generate_data_key(name, key_type="wrapped")["data"]
    assert "plaintext" not in wrapped
    assert wrapped["ciphertext"].startswith("vault:v1:")


def test_hvac_hash_and_random(client: hvac.Client) -> None:
    transit = client.secrets.transit
    digest = transit.hash_data(HELLO, algorithm="sha2-512", output_format="hex")
    assert digest["data"]["sum"] == hashlib.sha512(b"hello").hexdigest()
    random = transit.generate_random_bytes(n_bytes=48, output_format="hex")
    assert len(bytes.fromhex(random["data"]["random_bytes"])) == 48


def test_hvac_backup_restore(client: hvac.Client) -> None:
    transit = client.secrets.transit
    name = unique("aes")
    transit.create_key(
        name, key_type="aes256-gcm96", exportable=True, allow_plaintext_backup=True
    )
    ciphertext = transit.encrypt_data(name, plaintext=HELLO)["data"]["ciphertext"]
    backup = transit.backup_key(name)["data"]["backup"]

    copy = unique("restored")
    transit.restore_key(backup, name=copy)
    opened = transit.decrypt_data(copy, ciphertext=ciphertext)
    assert opened["data"]["plaintext"] == HELLO
    restored = transit.read_key(copy)["data"]
    assert restored["restore_info"]["version"] == 1


def test_backup_needs_both_flags(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96", exportable=True)
    answer = dev_server.request("GET", f"transit/backup/{name}")
    assert answer.status_code == 500
    assert "plaintext backup is disallowed" in errors(answer)
    other = make_key(dev_server, "aes256-gcm96", allow_plaintext_backup=True)
    answer = dev_server.request("GET", f"transit/backup/{other}")
    assert answer.status_code == 500
    assert "exporting is disallowed" in errors(answer)


def test_restore_rejects_existing_key(client: hvac.Client) -> None:
    transit = client.secrets.transit
    name = unique("aes")
    transit.create_key(name, exportable=True, allow_plaintext_backup=True)
    backup = transit.backup_key(name)["data"]["backup"]
    with pytest.raises(hvac.exceptions.InternalServerError, match="already exists"):
        transit.restore_key(backup)
    transit.restore_key(backup, force=True)


def test_restore_rejects_garbage(dev_server: ServerProcess) -> None:
    answer = post(dev_server, "restore/garbage", {"backup": "bm9wZQ=="})
    assert answer.status_code == 400
    assert "invalid backup" in errors(answer)


def test_encrypt_creates_missing_key(dev_server: ServerProcess) -> None:
    name = unique("upsert")
    encrypted = data(post(dev_server, f"encrypt/{name}", {"plaintext": HELLO}))
    assert encrypted["key_version"] == 1
    read = data(dev_server.request("GET", f"transit/keys/{name}"))
    assert read["type"] == "aes256-gcm96"


def test_derived_key_needs_context(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "chacha20-poly1305", derived=True)
    missing = post(dev_server, f"encrypt/{name}", {"plaintext": HELLO})
    assert missing.status_code == 400
    assert "missing context" in errors(missing)
    body = {"plaintext": HELLO, "context": "YWJj"}
    ciphertext = data(post(dev_server, f"encrypt/{name}", body))["ciphertext"]
    wrong = post(
        dev_server, f"decrypt/{name}", {"ciphertext": ciphertext, "context": "eHl6"}
    )
    assert wrong.status_code == 400
    right = post(
        dev_server, f"decrypt/{name}", {"ciphertext": ciphertext, "context": "YWJj"}
    )
    assert data(right)["plaintext"] == HELLO


def test_convergent_encryption_repeats(dev_server: ServerProcess) -> None:
    name = make_key(
        dev_server, "aes256-gcm96", derived=True, convergent_encryption=True
    )
    body = {"plaintext": HELLO, "context": "YWJj"}
    first = data(post(dev_server, f"encrypt/{name}", body))["ciphertext"]
    second = data(post(dev_server, f"encrypt/{name}", body))["ciphertext"]
    assert first == second


def test_rsa_key_encrypts(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    ciphertext = data(post(dev_server, f"encrypt/{name}", {"plaintext": HELLO}))
    opened = data(post(dev_server, f"decrypt/{name}", ciphertext))
    assert opened["plaintext"] == HELLO


def test_decrypt_tampered_ciphertext(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    ciphertext = data(post(dev_server, f"encrypt/{name}", {"plaintext": HELLO}))[
        "ciphertext"
    ]
    raw = bytearray(base64.b64decode(ciphertext.split(":")[2]))
    raw[-1] ^= 1
    tampered = "vault:v1:" + base64.b64encode(bytes(raw)).decode()
    answer = post(dev_server, f"decrypt/{name}", {"ciphertext": tampered})
    assert answer.status_code == 400
    assert "decryption failed" in errors(answer)


def test_encrypt_batch_reports_item_errors(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "aes256-gcm96")
    batch = [
        {"plaintext": HELLO, "reference": "a"},
        {"plaintext": "!!", "reference": "b"},
    ]
    answer = post(dev_server, f"encrypt/{name}", {"batch_input": batch})
    assert answer.status_code == 400
    results = answer.json()["data"]["batch_results"]
    assert results[0]["reference"] == "a"
    assert results[0]["ciphertext"].startswith("vault:v1:")
    assert "invalid plaintext" in results[1]["error"]


def test_sign_batch_keeps_order(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ed25519")
    batch = [{"input": HELLO}, {"input": "!!"}, {"input": HELLO_WORLD}]
    results = data(post(dev_server, f"sign/{name}", {"batch_input": batch}))[
        "batch_results"
    ]
    assert results[0]["signature"].startswith("vault:v1:")
    assert "error" in results[1]
    assert results[2]["signature"] != results[0]["signature"]


def test_hmac_round_trip(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "hmac", key_size=64)
    digest = data(post(dev_server, f"hmac/{name}/sha2-512", {"input": HELLO}))["hmac"]
    assert digest.startswith("vault:v1:")
    assert len(base64.b64decode(digest.split(":")[2])) == 64
    body = {"input": HELLO, "hmac": digest, "hash_algorithm": "sha2-512"}
    assert data(post(dev_server, f"verify/{name}", body))["valid"] is True
    body["input"] = HELLO_WORLD
    assert data(post(dev_server, f"verify/{name}", body))["valid"] is False


def test_hmac_key_never_read(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "hmac")
    read = data(dev_server.request("GET", f"transit/keys/{name}"))
    assert "keys" not in read
    assert read["key_size"] == 32


# -- verify after rotation and min_decryption_version -----------------------------


def test_rotation_signatures_carry_version(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    first = data(post(dev_server, f"sign/{name}", {"input": HELLO}))
    assert first["signature"].startswith("vault:v1:")
    assert first["key_version"] == 1
    data(post(dev_server, f"keys/{name}/rotate"))
    second = data(post(dev_server, f"sign/{name}", {"input": HELLO}))
    assert second["signature"].startswith("vault:v2:")
    assert second["key_version"] == 2


def test_old_signature_verifies_after_rotation(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    s1 = sign(dev_server, name)["signature"]
    data(post(dev_server, f"keys/{name}/rotate"))
    s2 = sign(dev_server, name)["signature"]
    assert data(verify(dev_server, name, s1))["valid"] is True
    assert data(verify(dev_server, name, s2))["valid"] is True
    relabelled = s1.replace("vault:v1:", "vault:v2:")
    assert data(verify(dev_server, name, relabelled))["valid"] is False


def test_key_read_lists_both_public_keys(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    data(post(dev_server, f"keys/{name}/rotate"))
    read = data(dev_server.request("GET", f"transit/keys/{name}"))
    assert read["latest_version"] == 2
    assert sorted(read["keys"]) == ["1", "2"]
    pems = {read["keys"][v]["public_key"] for v in ("1", "2")}
    assert len(pems) == 2


def test_min_decryption_version_bounds_verify(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    s1 = sign(dev_server, name)["signature"]
    data(post(dev_server, f"keys/{name}/rotate"))
    data(post(dev_server, f"keys/{name}/config", {"min_decryption_version": 2}))

    too_old = verify(dev_server, name, s1)
    assert too_old.status_code == 400
    assert "key version 1 is below the key's min_decryption_version 2" in errors(
        too_old
    )
    too_new = verify(dev_server, name, s1.replace("vault:v1:", "vault:v9:"))
    assert too_new.status_code == 400
    assert "too new" in errors(too_new)
    bare = verify(dev_server, name, s1.removeprefix("vault:v1:"))
    assert bare.status_code == 400
    assert "version prefix" in errors(bare)


@pytest.mark.parametrize("field", ["min_decryption_version", "min_encryption_version"])
def test_config_above_latest_changes_nothing(
    dev_server: ServerProcess, field: str
) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    data(post(dev_server, f"keys/{name}/rotate"))
    before = data(dev_server.request("GET", f"transit/keys/{name}"))
    answer = post(
        dev_server, f"keys/{name}/config", {field: 5, "deletion_allowed": True}
    )
    assert answer.status_code == 400
    assert "latest key version is 2" in errors(answer)
    after = data(dev_server.request("GET", f"transit/keys/{name}"))
    assert after == before


def test_jwks_follows_min_decryption(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    for _ in range(2):
        data(post(dev_server, f"keys/{name}/rotate"))
    data(post(dev_server, f"keys/{name}/config", {"min_decryption_version": 2}))
    read = data(dev_server.request("GET", f"transit/keys/{name}"))
    jwks = dev_server.request("GET", f"transit/jwks/{name}", token=None).json()
    kids = [entry["kid"] for entry in jwks["keys"]]
    assert kids == [read["keys"]["2"]["kid"], read["keys"]["3"]["kid"]]


# -- sign options: PSS salt, pkcs1v15, hashes, prehashed, key_version ----------------


def test_pss_auto_salt_verifies_only_as_auto(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    s1 = sign(dev_server, name)["signature"]
    assert data(verify(dev_server, name, s1, salt_length="auto"))["valid"] is True
    assert data(verify(dev_server, name, s1, salt_length="hash"))["valid"] is False


def test_pss_hash_salt_verifies_both_ways(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    s2 = sign(dev_server, name, salt_length="hash")["signature"]
    assert data(verify(dev_server, name, s2, salt_length="auto"))["valid"] is True
    assert data(verify(dev_server, name, s2, salt_length="hash"))["valid"] is True


@pytest.mark.parametrize(
    ("salt", "message"),
    [
        ("abc", "expected auto, hash"),
        ("-5", "must not be negative"),
        (100000, "maximum"),
    ],
)
def test_pss_bad_salt_is_400(
    dev_server: ServerProcess, salt: object, message: str
) -> None:
    name = make_key(dev_server, "rsa-2048")
    answer = post(
        dev_server, f"sign/{name}", {"input": HELLO_WORLD, "salt_length": salt}
    )
    assert answer.status_code == 400
    assert message in errors(answer)


def test_pkcs1v15_signature_checks(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    s3 = sign(dev_server, name, signature_algorithm="pkcs1v15")["signature"]
    as_pss = verify(dev_server, name, s3, signature_algorithm="pss")
    assert data(as_pss)["valid"] is False
    wrong_hash = verify(
        dev_server, name, s3, signature_algorithm="pkcs1v15", hash_algorithm="sha2-512"
    )
    assert data(wrong_hash)["valid"] is False
    right = verify(dev_server, name, s3, signature_algorithm="pkcs1v15")
    assert data(right)["valid"] is True


def test_unknown_signature_algorithm_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    answer = post(
        dev_server, f"sign/{name}", {"input": HELLO, "signature_algorithm": "pss2"}
    )
    assert answer.status_code == 400
    assert "invalid signature_algorithm 'pss2'" in errors(answer)


def test_hash_in_path_equals_body(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    path_signed = data(
        post(dev_server, f"sign/{name}/sha2-512", {"input": HELLO_WORLD})
    )
    body_check = verify(
        dev_server, name, path_signed["signature"], hash_algorithm="sha2-512"
    )
    assert data(body_check)["valid"] is True
    default_check = verify(dev_server, name, path_signed["signature"])
    assert data(default_check)["valid"] is False


@pytest.mark.parametrize("kind", ["rsa-2048", "ecdsa-p256"])
def test_unknown_hash_is_400(dev_server: ServerProcess, kind: str) -> None:
    name = make_key(dev_server, kind)
    answer = post(
        dev_server, f"sign/{name}", {"input": HELLO, "hash_algorithm": "blah-512"}
    )
    assert answer.status_code == 400
    assert 'invalid hash algorithm "blah-512"' in errors(answer)


def test_prehashed_pkcs1v15_matches_openssl(
    dev_server: ServerProcess, tmp_path: Path
) -> None:
    name = make_key(dev_server, "rsa-2048")
    digest = base64.b64encode(hashlib.sha256(b"hello world").digest()).decode()
    options = {"prehashed": True, "signature_algorithm": "pkcs1v15"}
    signed = data(post(dev_server, f"sign/{name}", {"input": digest, **options}))
    checked = post(dev_server, f"verify/{name}", {"input": digest, **signed, **options})
    assert data(checked)["valid"] is True

    export = dev_server.request("GET", f"transit/export/public-key/{name}/1")
    (tmp_path / "key.pem").write_text(data(export)["keys"]["1"] + "\n")
    (tmp_path / "message").write_bytes(b"hello world")
    raw = base64.b64decode(signed["signature"].split(":")[2])
    (tmp_path / "sig").write_bytes(raw)
    command = ["openssl", "dgst", "-sha256", "-verify", "key.pem"]
    command += ["-signature", "sig", "message"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "Verified OK"


def test_prehashed_wrong_length_is_400(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    short = base64.b64encode(b"x" * 20).decode()
    body = {"input": short, "prehashed": True, "hash_algorithm": "sha2-256"}
    answer = post(dev_server, f"sign/{name}", body)
    assert answer.status_code == 400
    assert "must be 32 bytes, got 20" in errors(answer)


def test_none_hash_needs_prehashed_pkcs1v15(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    answer = post(
        dev_server, f"sign/{name}", {"input": HELLO, "hash_algorithm": "none"}
    )
    assert answer.status_code == 400
    assert "requires both prehashed=true" in errors(answer)
    options = {"hash_algorithm": "none", "prehashed": True}
    options["signature_algorithm"] = "pkcs1v15"
    signed = data(post(dev_server, f"sign/{name}", {"input": HELLO, **options}))
    checked = post(dev_server, f"verify/{name}", {"input": HELLO, **signed, **options})
    assert data(checked)["valid"] is True


@pytest.mark.parametrize(
    "option",
    [{"hash_algorithm": "sha2-512"}, {"prehashed": True}],
    ids=["hash", "prehashed"],
)
def test_ed25519_signs_raw_input_with_warning(
    dev_server: ServerProcess, option: dict
) -> None:
    name = make_key(dev_server, "ed25519")
    answer = post(dev_server, f"sign/{name}", {"input": HELLO_WORLD, **option})
    assert answer.status_code == 200
    assert "hash_algorithm and prehashed are ignored" in answer.json()["warnings"][0]
    signature = base64.b64decode(answer.json()["data"]["signature"].split(":")[2])
    export = data(dev_server.request("GET", f"transit/export/public-key/{name}/1"))
    raw_public = base64.b64decode(export["keys"]["1"])
    public = ed25519.Ed25519PublicKey.from_public_bytes(raw_public)
    public.verify(signature, b"hello world")


def test_key_version_bounds_for_sign(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256")
    for _ in range(2):
        data(post(dev_server, f"keys/{name}/rotate"))
    s7 = sign(dev_server, name, key_version=1)
    assert s7["signature"].startswith("vault:v1:")
    assert s7["key_version"] == 1
    data(post(dev_server, f"keys/{name}/config", {"min_encryption_version": 2}))
    for version, message in [
        (1, "below min_encryption_version 2"),
        (9, "above the latest"),
    ]:
        answer = post(
            dev_server, f"sign/{name}", {"input": HELLO, "key_version": version}
        )
        assert answer.status_code == 400
        assert message in errors(answer)
    negative = post(dev_server, f"sign/{name}", {"input": HELLO, "key_version": -1})
    assert negative.status_code == 400
    assert data(verify(dev_server, name, s7["signature"]))["valid"] is True


def test_rsa_pss_verifies_with_cryptography(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "rsa-2048")
    signed = sign(dev_server, name, salt_length="hash", hash_algorithm="sha2-384")
    export = data(dev_server.request("GET", f"transit/export/public-key/{name}/1"))
    public = serialization.load_pem_public_key(export["keys"]["1"].encode())
    raw = base64.b64decode(signed["signature"].split(":")[2])
    pss = padding.PSS(padding.MGF1(hashes.SHA384()), padding.PSS.DIGEST_LENGTH)
    public.verify(raw, b"hello world", pss, hashes.SHA384())


# -- scheduled rotation across a restart -----------------------------------------


def restart_with_offset(server: ServerProcess, offset: str) -> None:
    """Stop, shift the clock in the config file, start and unseal."""
    server.stop()
    text = server.config_path.read_text()
    server.config_path.write_text(f'test_clock_offset = "{offset}"\n{text}')
    server.start()
    server.unseal()


def test_rotation_due_while_down_runs_at_unseal(tmp_path: Path) -> None:
    server = start_production(tmp_path)
    try:
        mount = server.request("POST", "sys/mounts/transit", json={"type": "transit"})
        assert mount.status_code == 204, mount.text
        name = make_key(server, "ed25519", auto_rotate_period="1h")
        other = make_key(server, "ed25519", auto_rotate_period="4h")
        restart_with_offset(server, "2h")

        read = data(server.request("GET", f"transit/keys/{name}"))
        assert read["latest_version"] == 2
        assert (
            data(server.request("GET", f"transit/keys/{other}"))["latest_version"] == 1
        )
    finally:
        server.stop()


# -- private material stays private ------------------------------------------------


def test_private_key_absent_from_read_and_log(dev_server: ServerProcess) -> None:
    name = make_key(dev_server, "ecdsa-p256", exportable=True)
    dev_server.request("POST", f"transit/jwt/sign/{name}", json={})
    exported = data(dev_server.request("GET", f"transit/export/signing-key/{name}/1"))
    pem = exported["keys"]["1"]
    body_line = pem.splitlines()[1]
    read = dev_server.request("GET", f"transit/keys/{name}").text
    assert "PRIVATE" not in read
    assert body_line not in read
    jwks = dev_server.request("GET", f"transit/jwks/{name}", token=None).text
    assert body_line not in jwks
    assert body_line not in dev_server.log_path.read_text()
