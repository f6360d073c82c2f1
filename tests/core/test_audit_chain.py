from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mssm.core.audit_chain import (
    GENESIS_HASH,
    ChainError,
    ChainVerifier,
    line_hash,
    load_public_key,
    public_key_text,
    sign_checkpoint,
)
from mssm.core.audit_file import AuditWriteError, ChainHead, FileAuditWriter


class Stored:
    """Collects the checkpoints a writer reports, as the broker stores them."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None

    async def __call__(self, checkpoint: dict[str, Any], head: ChainHead) -> None:
        self.latest = checkpoint | {"line_hash": head.hash}


async def write_log(
    path: Path, key: Ed25519PrivateKey, count: int, head: ChainHead | None = None
) -> Stored:
    stored = Stored()
    writer = FileAuditWriter("file/", str(path), 0o600, "0", key, stored)
    await writer.open(head)
    for i in range(count):
        await writer.write({"time": "2026-01-01T00:00:00.000000000Z", "n": i})
    await writer.close()
    return stored


def verify(key: Ed25519PrivateKey, *paths: Path, stored: dict | None = None) -> Any:
    verifier = ChainVerifier(key.public_key())
    for path in paths:
        verifier.verify_file(str(path))
    if stored is not None:
        verifier.check_stored_checkpoints(stored)
    return verifier.finish()


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


async def test_intact_log_verifies(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 5)
    result = verify(key, log)
    # file_start, first checkpoint, 5 entries, final checkpoint
    assert result.lines == 8
    assert result.checkpoints == 2
    assert result.notes == []


async def test_first_line_is_file_start_from_genesis(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 1)
    first = orjson.loads(lines_of(log)[0])
    assert first["type"] == "file_start"
    assert first["seq"] == 1
    assert first["prev_hash"] == GENESIS_HASH


async def test_edited_line_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 5)
    lines = lines_of(log)
    lines[3] = lines[3].replace(b'"n":1', b'"n":9')
    log.write_bytes(b"".join(lines))
    with pytest.raises(ChainError, match=r"audit.log:5: prev_hash does not match"):
        verify(key, log)


async def test_deleted_line_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 5)
    lines = lines_of(log)
    del lines[4]
    log.write_bytes(b"".join(lines))
    with pytest.raises(ChainError, match=r"audit.log:5: prev_hash does not match"):
        verify(key, log)


async def test_swapped_lines_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 5)
    lines = lines_of(log)
    lines[3], lines[4] = lines[4], lines[3]
    log.write_bytes(b"".join(lines))
    with pytest.raises(ChainError, match=r"audit.log:4: prev_hash does not match"):
        verify(key, log)


async def test_rebuilt_chain_fails_signature(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 5)
    rebuilt = rebuild_chain(lines_of(log), edit_index=3)
    log.write_bytes(b"".join(rebuilt))
    with pytest.raises(ChainError, match=r"audit.log:8: checkpoint signature"):
        verify(key, log)


def rebuild_chain(lines: list[bytes], edit_index: int) -> list[bytes]:
    """Edit one line and recompute every later prev_hash (and head_hash)."""
    parsed = [orjson.loads(line) for line in lines]
    parsed[edit_index]["n"] = 99
    out: list[bytes] = []
    previous = GENESIS_HASH
    for line in parsed:
        line["prev_hash"] = previous
        if line.get("type") == "checkpoint":
            line["head_hash"] = previous
        raw = orjson.dumps(line)
        out.append(raw + b"\n")
        previous = line_hash(raw)
    return out


async def test_cut_tail_detected_with_stored_checkpoint(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    stored = await write_log(log, key, 5)
    log.write_bytes(b"".join(lines_of(log)[:-2]))
    assert stored.latest is not None
    with pytest.raises(ChainError, match="lines were cut off from the end"):
        verify(key, log, stored={"file/": stored.latest})


async def test_wrong_public_key_rejected(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 1)
    with pytest.raises(ChainError, match="not with the given public key"):
        verify(Ed25519PrivateKey.generate(), log)


async def test_removed_first_lines_detected(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 3)
    log.write_bytes(b"".join(lines_of(log)[2:]))
    with pytest.raises(ChainError, match="is not a file_start line"):
        verify(key, log)


async def test_rotated_files_continue_chain(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    stored = Stored()
    writer = FileAuditWriter("file/", str(log), 0o600, "0", key, stored)
    await writer.open(None)
    await writer.write({"time": "2026-01-01T00:00:00Z", "n": 1})
    os.rename(log, tmp_path / "audit.log.1")
    await writer.write({"time": "2026-01-01T00:00:00Z", "n": 2})
    await writer.close()
    new_first = orjson.loads(lines_of(log)[0])
    assert new_first["type"] == "file_start"
    result = verify(key, tmp_path / "audit.log.1", log)
    # Old file: file_start, checkpoint, n=1. New: file_start, n=2, checkpoint.
    assert result.lines == 6
    alone = verify(key, log)
    assert "continuing an earlier file" in alone.notes[0]


async def test_restart_continues_chain(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 2)
    await write_log(log, key, 2)
    result = verify(key, log)
    # First run: file_start, checkpoint, 2 lines, checkpoint. The second run
    # has no file_start: it continues the same file.
    assert result.lines == 5 + 4
    assert result.checkpoints == 4


async def test_new_file_after_restart_uses_stored_head(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    stored = await write_log(first, key, 2)
    assert stored.latest is not None
    head = ChainHead(stored.latest["seq"], stored.latest["line_hash"])
    await write_log(second, key, 2, head=head)
    result = verify(key, first, second)
    assert result.checkpoints == 4


async def test_incomplete_last_line_cut_at_reopen(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    await write_log(log, key, 2)
    with open(log, "ab") as handle:
        handle.write(b'{"seq":99,"prev_')
    await write_log(log, key, 1)
    # 5 lines from the first run, 3 from the second (checkpoint, line,
    # checkpoint); the partial line is gone.
    assert verify(key, log).lines == 5 + 3
    assert b'"seq":99' not in log.read_bytes()


async def test_unwritable_device_raises_and_keeps_head(
    key: Ed25519PrivateKey,
) -> None:
    writer = FileAuditWriter("full/", "/dev/full", 0, "0", key, Stored())
    await writer.open(None)
    with pytest.raises(AuditWriteError, match="full/ failed to write"):
        await writer.write({"time": "2026-01-01T00:00:00Z", "n": 1})
    assert writer._head.seq == 0
    await writer.close()


def test_old_unsigned_lines_detected(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    bodies = [
        {"time": "2026-01-01T00:00:00.000000000Z", "type": "file_start"},
        {"time": "2026-01-01T00:00:01.000000000Z", "type": "request"},
        {"time": "2026-01-01T00:01:00.000000000Z", "type": "request"},
    ]
    log.write_bytes(chain_lines(bodies))
    with pytest.raises(ChainError, match="checkpoints were removed"):
        verify(key, log)


def test_recent_unsigned_tail_is_a_note(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = tmp_path / "audit.log"
    head_time = "2026-01-01T00:00:00.000000000Z"
    checkpoint = sign_checkpoint(key, "file/", "0", 1, "", head_time)
    bodies = [
        {"time": head_time, "type": "file_start", "device": "file/"},
        checkpoint,
        {"time": "2026-01-01T00:00:00.500000000Z", "type": "request"},
    ]
    log.write_bytes(chain_lines(bodies, sign_with=key))
    result = verify(key, log)
    assert "not yet covered" in result.notes[0]


def test_slow_read_after_checkpoint_is_a_note(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    # A read's request line is written with its response line and keeps the
    # time the read came in. A read that ran 7 s and was written just after
    # a checkpoint starts the unsigned tail with a time 7 s old, although the
    # whole tail was written at once. A server killed then leaves this tail.
    log = tmp_path / "audit.log"
    checkpoint = sign_checkpoint(key, "file/", "0", 1, "", "2026-01-01T00:00:10Z")
    bodies = [
        {"time": "2026-01-01T00:00:00Z", "type": "file_start", "device": "file/"},
        checkpoint,
        {"time": "2026-01-01T00:00:03Z", "type": "request", "request": {"id": "r1"}},
        {"time": "2026-01-01T00:00:10Z", "type": "response", "request": {"id": "r1"}},
    ]
    log.write_bytes(chain_lines(bodies, sign_with=key))
    result = verify(key, log)
    assert result.lines == 4
    assert "2 lines after the last checkpoint are not yet covered" in result.notes[0]


def test_old_tail_after_slow_read_detected(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = tmp_path / "audit.log"
    checkpoint = sign_checkpoint(key, "file/", "0", 1, "", "2026-01-01T00:00:10Z")
    bodies = [
        {"time": "2026-01-01T00:00:00Z", "type": "file_start", "device": "file/"},
        checkpoint,
        {"time": "2026-01-01T00:00:03Z", "type": "request", "request": {"id": "r1"}},
        {"time": "2026-01-01T00:00:10Z", "type": "response", "request": {"id": "r1"}},
        {"time": "2026-01-01T00:01:00Z", "type": "response", "request": {"id": "r2"}},
    ]
    log.write_bytes(chain_lines(bodies, sign_with=key))
    with pytest.raises(ChainError, match="span 50s with no checkpoint"):
        verify(key, log)


def chain_lines(
    bodies: list[dict[str, Any]], sign_with: Ed25519PrivateKey | None = None
) -> bytes:
    out = []
    previous = GENESIS_HASH
    for seq, body in enumerate(bodies, start=1):
        if body.get("type") == "checkpoint" and sign_with is not None:
            body = sign_checkpoint(
                sign_with, "file/", "0", seq - 1, previous, body["time"]
            )
        raw = orjson.dumps({"seq": seq, "prev_hash": previous, "writer": "0"} | body)
        out.append(raw + b"\n")
        previous = line_hash(raw)
    return b"".join(out)


def test_public_key_formats(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    text = public_key_text(key.public_key())
    assert load_public_key(text) == key.public_key()
    key_file = tmp_path / "audit.pub"
    key_file.write_text(text + "\n")
    assert load_public_key(str(key_file)) == key.public_key()
    with pytest.raises(ValueError, match="expected 32 bytes"):
        load_public_key("not-a-key")
