"""Initialisation, unseal progress and rekey over Shamir shares."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import uuid
from dataclasses import dataclass, field

import orjson

from mssm.core.barrier import SEAL_CONFIG_PATH, Barrier
from mssm.core.errors import BadRequest
from mssm.crypto import aead, shamir

logger = logging.getLogger(__name__)

MAX_SHARES = 255


@dataclass
class SealConfig:
    secret_shares: int
    secret_threshold: int
    nonce: str = ""


@dataclass
class RekeyOperation:
    nonce: str
    secret_shares: int
    secret_threshold: int
    shares: list[bytes] = field(default_factory=list)


def share_candidates(text: object) -> list[bytes]:
    """Decode text as hex and as base64; raise if it is neither."""
    if not isinstance(text, str) or not text:
        raise BadRequest("'key' must be a non-empty hex or base64 string")
    candidates = []
    try:
        candidates.append(bytes.fromhex(text))
    except ValueError:
        pass
    try:
        candidates.append(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        pass
    if not candidates:
        raise BadRequest("'key' must be a valid hex or base64 string")
    return candidates


def decode_share(text: object) -> bytes:
    """Accept a share as hex or base64, as Vault does; reject anything else."""
    for share in share_candidates(text):
        if len(share) == aead.KEY_SIZE + 1:
            return share
    raise BadRequest(
        "'key' must be an unseal key share in hex (66 characters) or base64 "
        "(44 characters)"
    )


def validate_share_counts(shares: object, threshold: object) -> tuple[int, int]:
    if isinstance(shares, bool) or not isinstance(shares, int):
        raise BadRequest("'secret_shares' must be an integer between 1 and 255")
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise BadRequest("'secret_threshold' must be an integer between 1 and 255")
    if not 1 <= shares <= MAX_SHARES:
        raise BadRequest("invalid seal configuration: secret_shares must be 1..255")
    if threshold < 1 or threshold > shares:
        raise BadRequest(
            "invalid seal configuration: threshold must be between 1 and secret_shares"
        )
    if shares > 1 and threshold == 1:
        raise BadRequest(
            "invalid seal configuration: threshold must be greater than one for "
            "multiple shares"
        )
    return shares, threshold


class SealManager:
    def __init__(self, barrier: Barrier) -> None:
        self.barrier = barrier
        self.progress: list[bytes] = []
        self.unseal_nonce = ""
        self.rekey: RekeyOperation | None = None

    async def config(self) -> SealConfig | None:
        raw = await self.barrier.backend.get(SEAL_CONFIG_PATH)
        return None if raw is None else SealConfig(**orjson.loads(raw))

    async def initialized(self) -> bool:
        return await self.config() is not None

    async def initialize(self, shares: int, threshold: int) -> list[bytes]:
        """Create the key hierarchy and return the unseal key's shares."""
        unseal_key = aead.generate_key()
        await self.barrier.initialize(unseal_key)
        config = SealConfig(shares, threshold)
        await self._store_config(config)
        logger.info("initialised with %d shares, threshold %d", shares, threshold)
        return shamir.split(unseal_key, shares, threshold)

    async def _store_config(self, config: SealConfig) -> None:
        raw = orjson.dumps(
            {
                "secret_shares": config.secret_shares,
                "secret_threshold": config.secret_threshold,
            }
        )
        await self.barrier.backend.put(SEAL_CONFIG_PATH, raw)

    async def submit_share(self, share: bytes) -> bool:
        """Add one share; return True once the barrier is unsealed.

        A share already submitted is ignored. When the threshold is reached
        and the shares do not rebuild the key, progress resets and the call
        raises, as Vault does.
        """
        config = await self.config()
        assert config is not None
        if any(hmac.compare_digest(share, held) for held in self.progress):
            return False
        if not self.progress:
            self.unseal_nonce = str(uuid.uuid4())
        self.progress.append(share)
        if len(self.progress) < config.secret_threshold:
            return False
        shares, self.progress, self.unseal_nonce = self.progress, [], ""
        key = _combine_or_none(shares)
        if key is None or not await self.barrier.unseal(key):
            logger.warning("unseal failed: the submitted shares do not match")
            raise BadRequest("Unseal failed, invalid key")
        logger.info("barrier unsealed")
        return True

    def reset_progress(self) -> None:
        self.progress = []
        self.unseal_nonce = ""

    # -- rekey -----------------------------------------------------------

    def start_rekey(self, shares: int, threshold: int) -> RekeyOperation:
        if self.rekey is not None:
            raise BadRequest("rekey already in progress")
        self.rekey = RekeyOperation(str(uuid.uuid4()), shares, threshold)
        logger.info("rekey started: %d shares, threshold %d", shares, threshold)
        return self.rekey

    def cancel_rekey(self, nonce: object) -> None:
        operation = self._require_rekey()
        if not isinstance(nonce, str) or not nonce:
            raise BadRequest("nonce required: pass the nonce from sys/rekey/init")
        if not hmac.compare_digest(nonce.encode(), operation.nonce.encode()):
            raise BadRequest("invalid nonce: it does not match the rekey in progress")
        self.rekey = None
        logger.info("rekey cancelled")

    def _require_rekey(self) -> RekeyOperation:
        if self.rekey is None:
            raise BadRequest("no rekey in progress")
        return self.rekey

    async def submit_rekey_share(self, share: bytes, nonce: object) -> list[bytes]:
        """Add a current share; return the new shares once the quorum is met."""
        operation = self._require_rekey()
        _check_rekey_nonce(operation, nonce)
        config = await self.config()
        assert config is not None

        if any(hmac.compare_digest(share, held) for held in operation.shares):
            raise BadRequest(
                "given key has already been provided during this rekey operation"
            )
        operation.shares.append(share)
        if len(operation.shares) < config.secret_threshold:
            return []

        shares, operation.shares = operation.shares, []
        old_key = _combine_or_none(shares)
        if old_key is None or not await self.barrier.verify_unseal_key(old_key):
            logger.warning("rekey share set rejected: invalid key")
            raise BadRequest("rekey failed: invalid key; progress reset")

        new_key = aead.generate_key()
        # NOTE: the new shares exist only in this response. If it never reaches
        # the operator (a crash, a dropped connection), the old shares no
        # longer unseal and the new ones are lost, because Vault's verification
        # step (require_verification) is not implemented.
        await self.barrier.replace_unseal_key(old_key, new_key)
        await self._store_config(
            SealConfig(operation.secret_shares, operation.secret_threshold)
        )
        self.rekey = None
        logger.info("rekey complete: old shares no longer unseal")
        return shamir.split(
            new_key, operation.secret_shares, operation.secret_threshold
        )

    async def quorum_key(self, shares: list[bytes]) -> bytes | None:
        """Return the unseal key if shares rebuild it, else None."""
        key = _combine_or_none(shares)
        if key is None or not await self.barrier.verify_unseal_key(key):
            return None
        return key


def _check_rekey_nonce(operation: RekeyOperation, nonce: object) -> None:
    if not isinstance(nonce, str) or not nonce:
        raise BadRequest("missing nonce: pass the nonce from sys/rekey/init")
    if not hmac.compare_digest(nonce.encode(), operation.nonce.encode()):
        raise BadRequest(
            f"incorrect nonce {nonce!r}: it does not match the rekey in progress"
        )


def _combine_or_none(shares: list[bytes]) -> bytes | None:
    try:
        return shamir.combine(shares)
    except ValueError:
        return None
