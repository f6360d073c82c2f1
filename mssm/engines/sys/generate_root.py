"""sys/generate-root: a new root token from a quorum of unseal key shares,
with Vault's one-time-password flow.

The operator starts an attempt and receives a one-time password (OTP) as
long as a root token. Key holders then submit their shares with the
attempt's nonce. When the shares rebuild the unseal key, the new root token
is returned XORed with the OTP and base64-encoded without padding, so the
token never crosses the wire in the clear. `sys/decode-token` (or the
operator's own tool) XORs it back.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest
from mssm.core.fields import ANY, BOOL, STRING, Field
from mssm.core.request import DELETE, READ, UPDATE, Request, Response
from mssm.core.seal import decode_share
from mssm.core.tokens import ROOT_TOKEN_RANDOM_CHARS, SERVICE_PREFIX
from mssm.engines.base import Route
from mssm.engines.sys.seal import plain

if TYPE_CHECKING:
    from mssm.core.core import Core

logger = logging.getLogger(__name__)

OTP_LENGTH = len(SERVICE_PREFIX) + ROOT_TOKEN_RANDOM_CHARS
_OTP_ALPHABET = string.ascii_letters + string.digits


@dataclass
class RootAttempt:
    nonce: str
    otp: str
    shares: list[bytes] = field(default_factory=list)


def encode_token(token: str, otp: str) -> str:
    """XOR token with otp and base64-encode the result without padding."""
    mixed = bytes(a ^ b for a, b in zip(token.encode(), otp.encode(), strict=True))
    return base64.b64encode(mixed).decode().rstrip("=")


def decode_token(encoded: str, otp: str) -> str:
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        mixed = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("encoded_token is not valid base64") from None
    if len(mixed) != len(otp.encode()):
        raise BadRequest("encoded_token and otp must have the same length")
    return bytes(a ^ b for a, b in zip(mixed, otp.encode(), strict=True)).decode()


class GenerateRootSection:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.attempt: RootAttempt | None = None

    def routes(self) -> list[Route]:
        return [
            Route(
                "generate-root/attempt",
                {READ: self.status, UPDATE: self.start, DELETE: self.cancel},
                {
                    "otp": Field(STRING),
                    "pgp_key": Field(STRING),
                    "attempt": Field(BOOL),
                },
            ),
            Route(
                "generate-root/update",
                {UPDATE: self.update},
                {"key": Field(ANY), "nonce": Field(STRING)},
            ),
            Route(
                "decode-token",
                {UPDATE: self.decode},
                {"encoded_token": Field(STRING), "otp": Field(STRING)},
                unauthenticated=True,
            ),
        ]

    async def teardown(self) -> None:
        # Progress lives in memory only, as unseal progress does.
        self.attempt = None

    async def status(self, req: Request, data: dict) -> Response:
        return plain(await self._status_body())

    async def _status_body(self, otp: str = "") -> dict[str, Any]:
        config = await self.core.seal_manager.config()
        attempt = self.attempt
        return {
            "nonce": attempt.nonce if attempt else "",
            "started": attempt is not None,
            "progress": len(attempt.shares) if attempt else 0,
            "required": config.secret_threshold if config else 0,
            "complete": False,
            "encoded_token": "",
            "encoded_root_token": "",
            "pgp_fingerprint": "",
            "otp": otp,
            "otp_length": OTP_LENGTH,
        }

    async def start(self, req: Request, data: dict) -> Response:
        if data.get("pgp_key"):
            raise BadRequest(
                "pgp_key is not supported; start the attempt with an otp, or "
                "with neither to have one generated"
            )
        if self.attempt is not None:
            raise BadRequest("root generation already in progress")
        given = data.get("otp", "")
        if given and len(given.encode()) != OTP_LENGTH:
            raise BadRequest(
                f"OTP string has incorrect length: expected {OTP_LENGTH} characters"
            )
        otp = given or "".join(secrets.choice(_OTP_ALPHABET) for _ in range(OTP_LENGTH))
        self.attempt = RootAttempt(str(uuid.uuid4()), otp)
        logger.warning("root token generation started (nonce %s)", self.attempt.nonce)
        return plain(await self._status_body(otp="" if given else otp))

    async def cancel(self, req: Request, data: dict) -> None:
        if self.attempt is not None:
            logger.warning("root token generation cancelled")
        self.attempt = None

    async def update(self, req: Request, data: dict) -> Response:
        attempt = self._check_attempt(data.get("nonce", ""))
        if "key" not in data:
            raise BadRequest("'key' must be specified in request body as JSON")
        share = decode_share(data["key"])
        if any(hmac.compare_digest(share, held) for held in attempt.shares):
            raise BadRequest(
                "given key has already been provided during this generation operation"
            )
        attempt.shares.append(share)
        config = await self.core.seal_manager.config()
        if config is None or len(attempt.shares) < config.secret_threshold:
            return plain(await self._status_body())
        return plain(await self._complete(attempt))

    def _check_attempt(self, nonce: str) -> RootAttempt:
        attempt = self.attempt
        if attempt is None:
            raise BadRequest("no root generation in progress")
        if not nonce or not hmac.compare_digest(nonce, attempt.nonce):
            raise BadRequest(
                "incorrect nonce supplied: it does not match the root generation "
                "in progress"
            )
        return attempt

    async def _complete(self, attempt: RootAttempt) -> dict[str, Any]:
        shares, attempt.shares = attempt.shares, []
        if await self.core.seal_manager.quorum_key(shares) is None:
            logger.warning("root token generation: the key shares are invalid")
            raise BadRequest(
                "root generation failed: the key shares do not rebuild the unseal "
                "key; progress was reset"
            )
        token = await self.core.tokens.create_root(display_name="root")
        self.attempt = None
        logger.warning("root token generated through sys/generate-root")
        encoded = encode_token(token, attempt.otp)
        body = await self._status_body()
        return body | {
            "nonce": attempt.nonce,
            "started": True,
            "progress": len(shares),
            "complete": True,
            "encoded_token": encoded,
            "encoded_root_token": encoded,
        }

    async def decode(self, req: Request, data: dict) -> Response:
        encoded, otp = data.get("encoded_token", ""), data.get("otp", "")
        if not encoded or not otp:
            raise BadRequest("provided 'encoded_token' or 'otp' is empty")
        return Response(data={"token": decode_token(encoded, otp)}, top_level=True)
