"""jwt/sign and jwt/verify: JSON Web Tokens (RFC 7519) in JWS compact form,
signed with a key's signing version and checked against the key alone.

Verification never trusts the token header to choose the algorithm: `alg`
must equal the key's algorithm, and `kid` must name a version from
min_decryption_version up. Time claims are checked as follows:

- `exp` is required and gets no leeway, because accepting a token after its
  expiry would extend a lifetime the issuer chose;
- `nbf` and `iat` may lie up to the key's jwt_leeway in the future, to
  tolerate clock skew between nodes;
- `exp` may not lie further ahead than jwt_max_ttl plus jwt_leeway, since
  MSSM never issues such a token;
- all three must be JSON numbers.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from mssm.core.errors import BadRequest
from mssm.core.fields import ANY, DURATION, MAP, STRING, Field
from mssm.core.request import UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.transit import asymmetric, jose
from mssm.engines.transit.keys import (
    ECDSA,
    KEY_NAME_PATTERN,
    RSA,
    KeyPolicy,
    KeyVersion,
)

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

NAME = f"(?P<name>{KEY_NAME_PATTERN})"
SIGN_FIELDS = {
    "claims": Field(MAP),
    "ttl": Field(DURATION),
    "audience": Field(ANY),
    "not_before": Field(DURATION),
}
VERIFY_FIELDS = {
    "token": Field(STRING, required=True),
    "audience": Field(STRING),
    "issuer": Field(STRING),
}
# Claims MSSM sets itself; a caller sets them through the request fields.
RESERVED_CLAIMS = {
    "iat": "MSSM sets it",
    "exp": "set ttl instead",
    "jti": "MSSM sets it",
    "nbf": "set not_before instead",
    "aud": "set audience instead",
    "iss": "set jwt_issuer on the key instead",
}


# Issuing and verifying a JWT compute a result and store nothing.
SIGNING = frozenset({UPDATE})


class InvalidToken(Exception):
    """A well-formed token that must be rejected; the message gives the reason."""


class JWTPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route(
                f"jwt/sign/{NAME}",
                {UPDATE: self.sign},
                SIGN_FIELDS,
                effect_free=SIGNING,
            ),
            Route(
                f"jwt/verify/{NAME}",
                {UPDATE: self.verify},
                VERIFY_FIELDS,
                effect_free=SIGNING,
            ),
        ]

    # -- sign ------------------------------------------------------------------

    async def sign(self, req: Request, data: dict) -> Response:
        policy = await self.store.require(data["name"], "signing key not found")
        _check_signs_jwt(policy)
        now = self.engine.now()
        version = policy.write_version(0, now)
        ttl, warnings = _ttl(policy, data.get("ttl"))
        claims = _claims(policy, data, int(now), ttl)
        kid = jose.version_kid(policy, version)
        header = {"alg": policy.jwt_alg, "kid": kid, "typ": "JWT"}
        token = await _serialize(policy, version, header, claims)
        body = {
            "token": token,
            "kid": kid,
            "key_version": version.number,
            "expiration": claims["exp"],
            "ttl": ttl,
        }
        return Response(data=body, warnings=warnings)

    # -- verify ----------------------------------------------------------------

    async def verify(self, req: Request, data: dict) -> dict:
        policy = await self.store.require(
            data["name"], "signature verification key not found"
        )
        _check_signs_jwt(policy)
        parts = parse_compact(data["token"])
        try:
            version = _check_header(policy, parts.header)
            _check_signature(policy, version, parts)
            _check_claims(policy, parts.claims, self.engine.now(), data)
        except InvalidToken as exc:
            return {"valid": False, "reason": str(exc)}
        return {
            "valid": True,
            "claims": parts.claims,
            "key_version": version.number,
            "kid": parts.header["kid"],
        }


def _check_signs_jwt(policy: KeyPolicy) -> None:
    if not policy.type.jwt_algorithms:
        raise BadRequest(f"key type {policy.type.name} does not sign JWTs")


def _ttl(policy: KeyPolicy, requested: int | None) -> tuple[int, list[str]]:
    if not requested:
        return policy.jwt_max_ttl, []
    if requested > policy.jwt_max_ttl:
        warning = (
            f"ttl of {requested}s is above the key's jwt_max_ttl; "
            f"capped to {policy.jwt_max_ttl}s"
        )
        return policy.jwt_max_ttl, [warning]
    return requested, []


def _claims(policy: KeyPolicy, data: dict, now: int, ttl: int) -> dict[str, Any]:
    claims = dict(data.get("claims") or {})
    for name, advice in RESERVED_CLAIMS.items():
        if name in claims:
            raise BadRequest(f"invalid claims: {name!r} is reserved; {advice}")
    claims |= {"iat": now, "exp": now + ttl, "jti": str(uuid.uuid4())}
    if policy.jwt_issuer:
        claims["iss"] = policy.jwt_issuer
    if "audience" in data:
        claims["aud"] = _audience(data["audience"])
    if "not_before" in data:
        claims["nbf"] = now + _not_before(data["not_before"], ttl)
    return claims


def _not_before(seconds: int, ttl: int) -> int:
    if seconds >= ttl:
        raise BadRequest(
            f"invalid not_before {seconds}s: it must be shorter than the "
            f"token's ttl of {ttl}s, or the token expires before it is valid"
        )
    return seconds


def _audience(value: object) -> str | list[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise BadRequest("invalid audience: expected a string or a list of strings")


async def _serialize(
    policy: KeyPolicy, version: KeyVersion, header: dict[str, str], claims: dict
) -> str:
    key = await jose.signing_key(policy, version)
    arguments = (header, orjson.dumps(claims), key)
    if policy.type.family == RSA:
        loop = asyncio.get_running_loop()
        pool = asymmetric.crypto_pool()
        return await loop.run_in_executor(pool, jose.serialize_compact, *arguments)
    return jose.serialize_compact(*arguments)


# -- parsing and checks ------------------------------------------------------------


class CompactToken:
    """A parsed JWS compact token whose signature has not been checked yet."""

    def __init__(self, header: dict, claims: dict, signing_input: bytes, sig: bytes):
        self.header = header
        self.claims = claims
        self.signing_input = signing_input
        self.signature = sig


def parse_compact(token: str) -> CompactToken:
    """Split and decode a compact JWS; raise a 400 if it is malformed.

    joserfc's jws.extract_compact is not used here, because it reports every
    header fault as one DecodeError and passes a JSON string containing "alg"
    as the header. It also rejects tokens that MSSM accepts, such as a b64
    member without crit or a header segment over 512 bytes.
    """
    pieces = token.split(".")
    if len(pieces) != 3:
        raise BadRequest(
            f"malformed token: a JWS compact token has 3 dot-separated parts, "
            f"got {len(pieces)}"
        )
    header = _decode_json(pieces[0], "header")
    claims = _decode_json(pieces[1], "payload")
    try:
        signature = jose.b64url_decode(pieces[2])
    except ValueError:
        raise BadRequest("malformed token: the signature is not base64url") from None
    signing_input = (pieces[0] + "." + pieces[1]).encode()
    return CompactToken(header, claims, signing_input, signature)


def _decode_json(piece: str, part: str) -> dict[str, Any]:
    try:
        value = orjson.loads(jose.b64url_decode(piece))
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest(
            f"malformed token: the {part} is not base64url-encoded JSON"
        ) from None
    if not isinstance(value, dict):
        raise BadRequest(f"malformed token: the {part} is not a JSON object")
    return value


def _check_header(policy: KeyPolicy, header: dict[str, Any]) -> KeyVersion:
    """Pin the algorithm to the key's and find the version that kid names."""
    alg = header.get("alg")
    if alg != policy.jwt_alg:
        raise InvalidToken(
            f"alg {alg!r} does not match the key's algorithm {policy.jwt_alg}"
        )
    if "crit" in header:
        raise InvalidToken(
            "the header lists crit extensions, which MSSM does not support"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        # Tokens from jwt/sign always carry a kid, so trying every version
        # would only widen what a forged token can match.
        raise InvalidToken("the header has no kid; MSSM requires one")
    version = _version_for_kid(policy, kid)
    if version.number < policy.min_decryption_version:
        raise InvalidToken(
            f"kid {kid} is key version {version.number}, below the key's "
            f"min_decryption_version {policy.min_decryption_version}"
        )
    return version


def _version_for_kid(policy: KeyPolicy, kid: str) -> KeyVersion:
    for version in policy.versions.values():
        if jose.version_kid(policy, version) == kid:
            return version
    raise InvalidToken(f"unknown kid {kid}: no version of key {policy.name!r} has it")


def _check_signature(
    policy: KeyPolicy, version: KeyVersion, parts: CompactToken
) -> None:
    if policy.type.family == ECDSA:
        _check_ecdsa_length(policy, parts.signature)
    signing_input, signature = parts.signing_input, parts.signature
    if not jose.verify_signature(policy, version, signing_input, signature):
        raise InvalidToken("signature verification failed")


def _check_ecdsa_length(policy: KeyPolicy, signature: bytes) -> None:
    # joserfc reports a wrong-length ES signature as a plain mismatch, so this
    # check names the length. Nothing splits or pads the signature to fit.
    expected = 2 * policy.type.coordinate_size
    if len(signature) != expected:
        raise InvalidToken(
            f"malformed signature: invalid signature: a {policy.type.curve} "
            f"jws signature is {expected} bytes, got {len(signature)}"
        )


def _check_claims(
    policy: KeyPolicy, claims: dict[str, Any], now: float, data: dict
) -> None:
    # joserfc's JWTClaimsRegistry cannot express these checks. It gives exp
    # the same leeway as nbf and iat, and has no ceiling on exp. It accepts an
    # aud claim when the verifier names no audience, and it rejects a sub or
    # jti that is not a string. Its errors do not carry the values below.
    leeway = policy.jwt_leeway
    exp = _numeric_date(claims, "exp", required=True)
    if exp <= now:
        raise InvalidToken(f"the token expired at {exp:.0f} (now {now:.0f})")
    if exp > now + policy.jwt_max_ttl + leeway:
        raise InvalidToken(
            f"exp {exp:.0f} is further ahead than the key's jwt_max_ttl of "
            f"{policy.jwt_max_ttl}s allows"
        )
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken(f"the token is not valid before {nbf:.0f} (now {now:.0f})")
    iat = _numeric_date(claims, "iat")
    if iat is not None and iat > now + leeway:
        raise InvalidToken(f"the token was issued in the future, at {iat:.0f}")
    _check_issuer(policy, claims, data.get("issuer"))
    _check_audience(claims, data.get("audience"))


def _numeric_date(
    claims: dict[str, Any], name: str, required: bool = False
) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f"the token has no {name} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the {name} claim must be a NumericDate (a JSON number)")
    return float(value)


def _check_issuer(
    policy: KeyPolicy, claims: dict[str, Any], expected: str | None
) -> None:
    expected = expected or policy.jwt_issuer
    if expected and claims.get("iss") != expected:
        raise InvalidToken(
            f"issuer {claims.get('iss')!r} does not match the expected {expected!r}"
        )


def _check_audience(claims: dict[str, Any], expected: str | None) -> None:
    audience = claims.get("aud")
    if audience is None:
        if expected:
            raise InvalidToken(f"the token has no aud claim; expected {expected!r}")
        return
    listed = [audience] if isinstance(audience, str) else audience
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        raise InvalidToken("the aud claim must be a string or a list of strings")
    if not expected:
        # RFC 7519 section 4.1.3: a recipient that is not named must reject.
        raise InvalidToken("the token has an aud claim; pass audience to verify it")
    if expected not in listed:
        raise InvalidToken(f"audience {expected!r} is not in the token's aud claim")
