"""The audit log's hash chain and signed checkpoints, and their verifier.

Every line of an audit file is one JSON object that starts with three chain
fields: `seq` (the line's number in its writer's chain, from 1), `prev_hash`
(the SHA-256, in hex, of the previous line's bytes without the newline, or
GENESIS_HASH for seq 1) and `writer` (the id of the process that wrote it).
A writer's chain continues across restarts and across files.

Two kinds of line belong to the chain itself:
- `file_start` is the first line a writer puts in each file it opens, so
  lines cut from the start of a file are noticed.
- `checkpoint` signs the chain head with the Ed25519 audit key. Anyone who
  can edit the file can rebuild a bare hash chain, but cannot forge a
  checkpoint without the key, which is kept in the barrier. Writers add one at
  least every CHECKPOINT_INTERVAL seconds while there is traffic, when they
  open a file and at shutdown.

The verifier reads files in order and stops at the first bad line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

GENESIS_HASH = "0" * 64
CHECKPOINT_INTERVAL = 1.0
# A tail of unsigned lines longer than this cannot come from a running
# writer, which signs at least every CHECKPOINT_INTERVAL seconds. The
# margin covers batching and a slow disk.
MAX_UNCOVERED_SECONDS = 5.0
FILE_START = "file_start"
CHECKPOINT = "checkpoint"
_SIGNING_DOMAIN = b"mssm-audit-checkpoint-v1"


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """Encode a public key as base64 of its 32 raw bytes."""
    raw = public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_message(
    device: str, writer: str, count: int, head_hash: str, time: str
) -> bytes:
    """Return the bytes a checkpoint's signature covers."""
    parts = [_SIGNING_DOMAIN, device, writer, str(count), head_hash, time]
    return b"\n".join(p if isinstance(p, bytes) else p.encode() for p in parts)


def sign_checkpoint(
    key: Ed25519PrivateKey, device: str, writer: str, count: int, head: str, now: str
) -> dict[str, Any]:
    """Build the body of a checkpoint line over the chain head `head`.

    The chain fields (seq, prev_hash, writer) are added by the file writer;
    `count` is the seq of the last line the checkpoint covers.
    """
    signature = key.sign(checkpoint_message(device, writer, count, head, now))
    return {
        "time": now,
        "type": CHECKPOINT,
        "device": device,
        "count": count,
        "head_hash": head,
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(signature).decode(),
    }


def load_public_key(text: str) -> Ed25519PublicKey:
    """Read a public key given as base64, hex or PEM, or a file holding one."""
    candidate = text.strip()
    path = Path(candidate)
    if len(candidate) < 4096 and path.is_file():
        candidate = path.read_text(encoding="utf-8").strip()
    if candidate.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(candidate.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM public key is not an Ed25519 key")
        return key
    raw = _decode_raw_key(candidate)
    return Ed25519PublicKey.from_public_bytes(raw)


def _decode_raw_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != 32:
        raise ValueError(
            "invalid public key: expected 32 bytes as base64 (44 characters), "
            "hex (64 characters), a PEM block, or a file holding one of them"
        )
    return raw


def parse_time(text: str) -> float:
    """Parse the RFC 3339 UTC times MSSM writes, down to microseconds."""
    moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = text[20:-1] if len(text) > 20 and text[19] == "." else ""
    return moment.timestamp() + (float("0." + fraction[:6]) if fraction else 0.0)


class ChainError(Exception):
    """A line breaks the chain. The message names the file and line."""


@dataclass
class _Chain:
    device: str
    last_hash: str
    last_seq: int
    last_location: str
    covered_seq: int = 0
    first_uncovered: str = ""
    first_uncovered_time: float | None = None
    # The id of the request whose request line starts the unsigned lines.
    first_uncovered_request: str = ""
    last_time: float | None = None
    checkpoints: dict[int, str] = field(default_factory=dict)


@dataclass
class VerifyResult:
    lines: int = 0
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)


class ChainVerifier:
    """Check audit files against the chain rules and a public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.key_id = key_id(public_key)
        self.result = VerifyResult()
        self._chains: dict[str, _Chain] = {}

    def verify_file(self, path: str) -> None:
        seen_in_file: set[str] = set()
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                location = f"{path}:{number}"
                if not raw.endswith(b"\n"):
                    raise ChainError(f"{location}: the last line is incomplete")
                self._verify_line(raw[:-1], location, seen_in_file)

    def _verify_line(self, raw: bytes, location: str, seen: set[str]) -> None:
        line = _parse_line(raw, location)
        writer = line["writer"]
        if writer not in seen and line.get("type") != FILE_START:
            raise ChainError(
                f"{location}: the first line of writer {writer!r} in this file "
                "is not a file_start line; lines were removed from the start"
            )
        seen.add(writer)
        chain = self._chains.get(writer)
        if chain is None:
            chain = self._start_chain(line, location)
            self._chains[writer] = chain
        else:
            _check_link(chain, line, location)
        if line.get("type") == CHECKPOINT:
            self._check_checkpoint(chain, line, location, writer)
        self._advance(chain, line, raw, location)

    def _start_chain(self, line: dict[str, Any], location: str) -> _Chain:
        seq, prev = line["seq"], line["prev_hash"]
        if seq == 1 and prev != GENESIS_HASH:
            raise ChainError(f"{location}: seq 1 must start from the genesis hash")
        if seq != 1:
            self.result.notes.append(
                f"{location}: the chain of writer {line['writer']!r} starts at seq "
                f"{seq}, continuing an earlier file; pass the earlier files first "
                "to check that link"
            )
        device = line.get("device", "")
        return _Chain(device, prev, seq - 1, "(an earlier file)")

    def _check_checkpoint(
        self, chain: _Chain, line: dict[str, Any], location: str, writer: str
    ) -> None:
        if line.get("key_id") != self.key_id:
            raise ChainError(
                f"{location}: checkpoint signed with key {line.get('key_id')!r}, "
                f"not with the given public key ({self.key_id})"
            )
        if line.get("head_hash") != line["prev_hash"]:
            raise ChainError(f"{location}: checkpoint head_hash is not its prev_hash")
        if line.get("count") != line["seq"] - 1:
            raise ChainError(f"{location}: checkpoint count does not match its seq")
        message = checkpoint_message(
            str(line.get("device", "")),
            writer,
            line["count"],
            line["head_hash"],
            str(line.get("time", "")),
        )
        try:
            signature = base64.b64decode(line.get("signature", ""), validate=True)
            self.public_key.verify(signature, message)
        except (InvalidSignature, binascii.Error, ValueError):
            raise ChainError(
                f"{location}: checkpoint signature is invalid; the chain up to "
                "this line was altered or the checkpoint was forged"
            ) from None

    def _advance(
        self, chain: _Chain, line: dict[str, Any], raw: bytes, location: str
    ) -> None:
        digest = line_hash(raw)
        moment = _line_time(line)
        chain.last_hash = digest
        chain.last_seq = line["seq"]
        chain.last_location = location
        chain.last_time = moment or chain.last_time
        chain.device = line.get("device", chain.device)
        self.result.lines += 1
        if line.get("type") == CHECKPOINT:
            chain.covered_seq = line["seq"]
            chain.checkpoints[line["seq"]] = digest
            chain.first_uncovered, chain.first_uncovered_time = "", None
            chain.first_uncovered_request = ""
            self.result.checkpoints += 1
        elif not chain.first_uncovered:
            chain.first_uncovered, chain.first_uncovered_time = location, moment
            if line.get("type") == "request":
                chain.first_uncovered_request = _request_id(line)
        elif chain.first_uncovered_request:
            # A request that changes nothing has its request line written
            # with its response line, the next one, but the request line
            # carries the time the request came in. The response line's time
            # is when both were written.
            if line.get("type") == "response" and moment is not None:
                if _request_id(line) == chain.first_uncovered_request:
                    chain.first_uncovered_time = moment
            chain.first_uncovered_request = ""

    def check_stored_checkpoints(self, stored: dict[str, dict[str, Any]]) -> None:
        """Compare each chain with the server's latest checkpoint of its device."""
        for writer, chain in self._chains.items():
            checkpoint = stored.get(chain.device)
            if not checkpoint or checkpoint.get("writer") != writer:
                continue
            seq = checkpoint["seq"]
            if chain.last_seq < seq:
                raise ChainError(
                    f"{chain.last_location}: the file ends at seq {chain.last_seq}, "
                    f"but the server's latest checkpoint of {chain.device} is at "
                    f"seq {seq}; lines were cut off from the end"
                )
            if chain.checkpoints.get(seq) not in (None, checkpoint.get("line_hash")):
                raise ChainError(
                    f"the checkpoint at seq {seq} differs from the server's copy"
                )

    def finish(self) -> VerifyResult:
        """Check the unsigned tails, and return the counts and notes."""
        for writer, chain in self._chains.items():
            if chain.last_seq <= chain.covered_seq:
                continue
            span = _span(chain.first_uncovered_time, chain.last_time)
            if span > MAX_UNCOVERED_SECONDS:
                raise ChainError(
                    f"{chain.first_uncovered}: {chain.last_seq - chain.covered_seq} "
                    f"lines of writer {writer!r} span {span:.0f}s with no checkpoint, "
                    f"but one is written every {CHECKPOINT_INTERVAL:g}s; checkpoints "
                    "were removed"
                )
            self.result.notes.append(
                f"{chain.first_uncovered} to {chain.last_location}: "
                f"{chain.last_seq - chain.covered_seq} lines after the last "
                "checkpoint are not yet covered by a signature"
            )
        return self.result


def _parse_line(raw: bytes, location: str) -> dict[str, Any]:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ChainError(f"{location}: not a valid JSON line") from None
    if not isinstance(line, dict):
        raise ChainError(f"{location}: not a JSON object")
    seq, prev, writer = line.get("seq"), line.get("prev_hash"), line.get("writer")
    if not isinstance(seq, int) or not isinstance(prev, str) or not writer:
        raise ChainError(f"{location}: missing the chain fields seq, prev_hash, writer")
    return line


def _check_link(chain: _Chain, line: dict[str, Any], location: str) -> None:
    if line["prev_hash"] != chain.last_hash:
        raise ChainError(
            f"{location}: prev_hash does not match the hash of the previous line "
            f"({chain.last_location}); a line was edited, deleted, inserted or "
            "reordered"
        )
    if line["seq"] != chain.last_seq + 1:
        raise ChainError(
            f"{location}: seq {line['seq']} follows seq {chain.last_seq}; a line was "
            "deleted, inserted or reordered"
        )


def _request_id(line: dict[str, Any]) -> str:
    request = line.get("request")
    if not isinstance(request, dict):
        return ""
    request_id = request.get("id")
    return request_id if isinstance(request_id, str) else ""


def _line_time(line: dict[str, Any]) -> float | None:
    text = line.get("time")
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def _span(first: float | None, last: float | None) -> float:
    if first is None or last is None:
        return 0.0
    return last - first
