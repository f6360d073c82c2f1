"""operator init/unseal/seal/rekey/rotate and status on a SQLite server."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Result, Server, clean_env, run_mssm


def mssm(server: Server, *args: str, input: str | None = None, **env: str) -> Result:
    variables = clean_env(MSSM_ADDR=server.address, HOME=str(Path("/nonexistent")))
    if server.root_token:
        variables["MSSM_TOKEN"] = server.root_token
    variables.update(env)
    return run_mssm(*args, env=variables, input=input)


def init(server: Server, shares: int = 1, threshold: int = 1) -> dict:
    result = mssm(
        server,
        "operator",
        "init",
        f"-key-shares={shares}",
        f"-key-threshold={threshold}",
        "-format=json",
    )
    assert result.code == 0, result.stderr
    body = result.json()
    server.root_token = body["root_token"]
    return body


def test_init_status_before_and_after(sqlite_server: Server) -> None:
    before = mssm(sqlite_server, "operator", "init", "-status")
    init(sqlite_server)
    after = mssm(sqlite_server, "operator", "init", "-status")

    assert before.code == 2
    assert after.code == 0


def test_init_json_fields(sqlite_server: Server) -> None:
    body = init(sqlite_server, shares=3, threshold=2)

    assert len(body["unseal_keys_b64"]) == 3
    assert len(body["unseal_keys_hex"]) == 3
    assert body["unseal_shares"] == 3
    assert body["unseal_threshold"] == 2
    assert body["root_token"]


def test_init_threshold_above_shares_exit_one(sqlite_server: Server) -> None:
    result = mssm(
        sqlite_server, "operator", "init", "-key-shares=2", "-key-threshold=3"
    )

    assert result.code == 1
    assert "-key-threshold (3) must not exceed -key-shares (2)" in result.stderr


def test_status_sealed_exit_two_then_unsealed(sqlite_server: Server) -> None:
    keys = init(sqlite_server, shares=3, threshold=2)["unseal_keys_b64"]

    sealed = mssm(sqlite_server, "status", "-format=json")
    first = mssm(sqlite_server, "operator", "unseal", keys[0])
    second = mssm(sqlite_server, "operator", "unseal", "-", input=keys[1] + "\n")
    unsealed = mssm(sqlite_server, "status", "-format=json")

    assert sealed.code == 2
    assert sealed.json()["sealed"] is True
    assert first.code == 0
    assert "Unseal Progress    1/2" in first.stdout
    assert second.code == 0
    assert unsealed.code == 0
    assert unsealed.json()["sealed"] is False


def test_unseal_reset_clears_progress(sqlite_server: Server) -> None:
    keys = init(sqlite_server, shares=3, threshold=2)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", keys[0])

    reset = mssm(sqlite_server, "operator", "unseal", "-reset", "-format=json")

    assert reset.code == 0
    assert reset.json()["progress"] == 0


def test_unseal_bad_key_exit_two(sqlite_server: Server) -> None:
    init(sqlite_server)
    bad_key = "AAAA" + "B" * 40

    result = mssm(sqlite_server, "operator", "unseal", bad_key)

    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert bad_key not in result.stderr


def test_seal_then_status_exit_two(sqlite_server: Server) -> None:
    keys = init(sqlite_server)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", keys[0])

    seal = mssm(sqlite_server, "operator", "seal")
    status = mssm(sqlite_server, "status")

    assert seal.code == 0
    assert seal.stdout == "Success! MSSM is sealed.\n"
    assert status.code == 2
    assert "Sealed             true" in status.stdout


def test_rotate_advances_key_term(sqlite_server: Server) -> None:
    keys = init(sqlite_server)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", keys[0])

    before = mssm(sqlite_server, "operator", "key-status", "-format=json").json()
    rotate = mssm(sqlite_server, "operator", "rotate", "-format=json")

    assert rotate.code == 0
    assert rotate.json()["term"] == before["term"] + 1


def test_rekey_replaces_shares(sqlite_server: Server) -> None:
    old_keys = init(sqlite_server)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", old_keys[0])

    started = mssm(
        sqlite_server,
        "operator",
        "rekey",
        "-init",
        "-key-shares=2",
        "-key-threshold=2",
        "-format=json",
    )
    nonce = started.json()["nonce"]
    done = mssm(
        sqlite_server,
        "operator",
        "rekey",
        f"-nonce={nonce}",
        "-format=json",
        old_keys[0],
    )
    new_keys = done.json()["keys_base64"]
    mssm(sqlite_server, "operator", "seal")
    first = mssm(sqlite_server, "operator", "unseal", "-format=json", new_keys[0])
    second = mssm(sqlite_server, "operator", "unseal", new_keys[1])
    status = mssm(sqlite_server, "status")

    assert started.code == 0
    assert done.code == 0
    assert len(new_keys) == 2
    assert first.json()["t"] == 2
    assert second.code == 0
    assert status.code == 0


def test_rekey_cancel(sqlite_server: Server) -> None:
    keys = init(sqlite_server)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", keys[0])
    started = mssm(sqlite_server, "operator", "rekey", "-init", "-format=json")
    nonce = started.json()["nonce"]

    cancel = mssm(sqlite_server, "operator", "rekey", "-cancel", f"-nonce={nonce}")
    status = mssm(sqlite_server, "operator", "rekey", "-status", "-format=json")

    assert cancel.code == 0
    assert status.json()["started"] is False


def test_rekey_update_without_nonce_exit_one(sqlite_server: Server) -> None:
    result = mssm(sqlite_server, "operator", "rekey", "somekey")

    assert result.code == 1
    assert "missing -nonce" in result.stderr


def test_generate_root_decode_known_answer() -> None:
    # Encoded token and OTP from a generate-root run of OpenBao 2.7.2.
    result = run_mssm(
        "operator",
        "generate-root",
        "-decode=FnoCREMbGQYJGBV3N1wrDTRPDgwaRSI7ezE",
        "-otp=eTLsvkXPZZb0o1bXp5VxYsRY3i",
        env=clean_env(),
    )

    assert result.code == 0
    assert result.stdout == "s.N75pAVSBwGXmIUDzXtC6pbHX\n"


def test_generate_root_decode_wrong_otp_length() -> None:
    result = run_mssm(
        "operator",
        "generate-root",
        "-decode=FnoCREMbGQYJGBV3N1wrDTRPDgwaRSI7ezE",
        "-otp=short",
        env=clean_env(),
    )

    assert result.code == 1
    assert "-otp has 5 characters but the encoded token has 26 bytes" in result.stderr


def test_generate_root_flow(sqlite_server: Server) -> None:
    keys = init(sqlite_server)["unseal_keys_b64"]
    mssm(sqlite_server, "operator", "unseal", keys[0])
    assert sqlite_server.has_route("GET", "sys/generate-root/attempt")

    otp = mssm(
        sqlite_server, "operator", "generate-root", "-generate-otp"
    ).stdout.strip()
    started = mssm(
        sqlite_server,
        "operator",
        "generate-root",
        "-init",
        f"-otp={otp}",
        "-format=json",
    )
    nonce = started.json()["nonce"]
    done = mssm(
        sqlite_server,
        "operator",
        "generate-root",
        f"-nonce={nonce}",
        "-format=json",
        keys[0],
    )
    encoded = done.json()["encoded_token"]
    decoded = mssm(
        sqlite_server, "operator", "generate-root", f"-decode={encoded}", f"-otp={otp}"
    )
    new_root = decoded.stdout.strip()
    lookup = mssm(sqlite_server, "token", "lookup", "-format=json", MSSM_TOKEN=new_root)

    assert started.code == 0
    assert done.json()["complete"] is True
    assert decoded.code == 0
    assert lookup.json()["data"]["policies"] == ["root"]
