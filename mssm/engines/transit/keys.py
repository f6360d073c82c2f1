"""Named keys and their versions: types, version bounds, rotation, trimming
and the per-key options, without storage or crypto calls.

A key (Vault calls it a policy) has numbered versions. Rotation adds a
version. Writes (sign, encrypt, hmac, JWT) use the signing version, reads
(verify, decrypt) accept any version from min_decryption_version to the
latest, and trimming deletes the versions below min_available_version.

With publish_ahead set, a rotation adds a version that is published at once
but starts signing only publish_ahead seconds later, so that verifiers that
cache key sets have fetched it before they see it.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mssm.core.errors import BadRequest

AEAD = "aead"
ED25519 = "ed25519"
ECDSA = "ecdsa"
RSA = "rsa"
HMAC = "hmac"

MIN_AUTO_ROTATE_PERIOD = 3600
# The maximum of the duration options, in seconds: 2^63-1 nanoseconds, the
# largest Go time.Duration. OpenBao 2.7 rejects longer values for these
# options, and they would push derived timestamps past the range of 64-bit
# JSON integers and RFC 3339 times.
MAX_DURATION = (2**63 - 1) // 10**9
# jwt_leeway is left out: it has its own, much lower maximum.
DURATION_OPTIONS = (
    "auto_rotate_period",
    "publish_ahead",
    "jwt_max_ttl",
    "jwks_max_age",
)
# Key names as OpenBao 2.7's transit engine accepts them: ASCII letters,
# digits, "_", "-" and ".", starting and ending with a letter, digit or "_".
# Names are path segments, storage keys and log fields, so nothing else is
# safe in them.
KEY_NAME_PATTERN = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
DEFAULT_JWT_MAX_TTL = 3600
# Clock skew tolerated on nbf and iat when verifying a JWT. Vault's JWT auth
# uses 60 s by default for the same purpose.
DEFAULT_JWT_LEEWAY = 60
DEFAULT_JWKS_MAX_AGE = 300
HMAC_KEY_SIZE = 32
MIN_HMAC_KEY_SIZE = 32
MAX_HMAC_KEY_SIZE = 512


@dataclass(frozen=True)
class KeyType:
    name: str
    family: str
    # Key length in bytes for symmetric and HMAC keys, in bits for RSA.
    size: int = 0
    curve: str = ""
    # JWS algorithms the key may sign with; the first is the default.
    jwt_algorithms: tuple[str, ...] = ()

    @property
    def asymmetric(self) -> bool:
        return self.family in (ED25519, ECDSA, RSA)

    @property
    def supports_signing(self) -> bool:
        return self.asymmetric

    @property
    def supports_encryption(self) -> bool:
        return self.family in (AEAD, RSA)

    @property
    def supports_derivation(self) -> bool:
        return self.family == AEAD

    @property
    def version_label(self) -> str:
        """The name shown for each version in a key read, as Vault shows it."""
        return self.curve or self.name

    @property
    def coordinate_size(self) -> int:
        """Bytes in one ECDSA coordinate, and in r or s of a raw signature."""
        bits = {"P-256": 256, "P-384": 384, "P-521": 521}[self.curve]
        return (bits + 7) // 8


_RSA_JWT = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
KEY_TYPES: dict[str, KeyType] = {
    t.name: t
    for t in (
        KeyType("aes128-gcm96", AEAD, 16),
        KeyType("aes256-gcm96", AEAD, 32),
        KeyType("chacha20-poly1305", AEAD, 32),
        KeyType("ed25519", ED25519, jwt_algorithms=("EdDSA",)),
        KeyType("ecdsa-p256", ECDSA, curve="P-256", jwt_algorithms=("ES256",)),
        KeyType("ecdsa-p384", ECDSA, curve="P-384", jwt_algorithms=("ES384",)),
        KeyType("ecdsa-p521", ECDSA, curve="P-521", jwt_algorithms=("ES512",)),
        KeyType("rsa-2048", RSA, 2048, jwt_algorithms=_RSA_JWT),
        KeyType("rsa-3072", RSA, 3072, jwt_algorithms=_RSA_JWT),
        KeyType("rsa-4096", RSA, 4096, jwt_algorithms=_RSA_JWT),
        KeyType("hmac", HMAC, jwt_algorithms=("HS256", "HS384", "HS512")),
    )
}
DEFAULT_KEY_TYPE = "aes256-gcm96"


def key_type(name: str) -> KeyType:
    found = KEY_TYPES.get(name)
    if found is None:
        raise BadRequest(
            f"unknown key type {name}: expected one of {', '.join(KEY_TYPES)}"
        )
    return found


@dataclass
class KeyVersion:
    """One version of a key. The secret fields are kept out of repr."""

    number: int
    creation_time: float
    # When the version starts signing; later than creation_time only for a
    # version published ahead.
    activation_time: float
    # PKCS#8 DER for asymmetric keys, the raw key for AEAD and HMAC keys.
    key: bytes = field(repr=False)
    # The key for the hmac/ endpoint, separate from the signing key.
    hmac_key: bytes = field(repr=False)
    # SubjectPublicKeyInfo DER, for asymmetric keys only.
    public_key: bytes = b""
    # For HMAC keys: a random JWT key id, unrelated to the secret.
    kid: str = ""
    # Parsed key objects, filled on first use and never stored.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "creation_time": self.creation_time,
            "activation_time": self.activation_time,
            "key": _b64(self.key),
            "hmac_key": _b64(self.hmac_key),
            "public_key": _b64(self.public_key),
            "kid": self.kid,
        }

    @classmethod
    def from_json(cls, number: int, raw: dict[str, Any]) -> KeyVersion:
        return cls(
            number=number,
            creation_time=float(raw["creation_time"]),
            activation_time=float(raw.get("activation_time", raw["creation_time"])),
            key=base64.b64decode(raw["key"]),
            hmac_key=base64.b64decode(raw["hmac_key"]),
            public_key=base64.b64decode(raw.get("public_key", "")),
            kid=raw.get("kid", ""),
        )


@dataclass
class KeyPolicy:
    """A named key: its versions, version bounds and options."""

    name: str
    type: KeyType
    versions: dict[int, KeyVersion] = field(default_factory=dict)
    latest_version: int = 0
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    min_available_version: int = 0
    deletion_allowed: bool = False
    exportable: bool = False
    allow_plaintext_backup: bool = False
    derived: bool = False
    convergent_encryption: bool = False
    auto_rotate_period: int = 0
    key_size: int = 0
    publish_ahead: int = 0
    jwt_max_ttl: int = DEFAULT_JWT_MAX_TTL
    jwt_issuer: str = ""
    jwt_algorithm: str = ""
    jwt_leeway: int = DEFAULT_JWT_LEEWAY
    jwks_max_age: int = DEFAULT_JWKS_MAX_AGE
    publish: bool = False
    backup_info: dict[str, Any] | None = None
    restore_info: dict[str, Any] | None = None

    def copy(self) -> KeyPolicy:
        """Copy for a change; versions are shared so parsed keys stay cached."""
        clone = copy.copy(self)
        clone.versions = dict(self.versions)
        return clone

    # -- versions --------------------------------------------------------

    @property
    def jwt_alg(self) -> str:
        return self.jwt_algorithm or self.type.jwt_algorithms[0]

    def signing_version(self, now: float) -> int:
        """The newest version whose activation time has come."""
        active = [n for n, v in self.versions.items() if v.activation_time <= now]
        return max(active) if active else self.latest_version

    def current_version(self, now: float) -> int:
        """The default version for writes: the signing version, raised to
        min_encryption_version when that is set higher."""
        return max(self.signing_version(now), self.min_encryption_version)

    def pending_versions(self, now: float) -> list[KeyVersion]:
        return [
            v
            for n, v in sorted(self.versions.items())
            if v.activation_time > now and n > self.signing_version(now)
        ]

    def write_version(self, requested: int, now: float) -> KeyVersion:
        """Pick the version for sign, encrypt and hmac; 0 means current_version."""
        if requested < 0:
            raise BadRequest(f"invalid key_version {requested}: must not be negative")
        if requested == 0:
            return self.versions[self.current_version(now)]
        if requested > self.latest_version:
            raise BadRequest(
                f"invalid key_version {requested}: above the latest version "
                f"{self.latest_version}"
            )
        if requested < self.min_encryption_version:
            raise BadRequest(
                f"invalid key_version {requested}: below min_encryption_version "
                f"{self.min_encryption_version}"
            )
        if requested > self.signing_version(now):
            raise BadRequest(
                f"invalid key_version {requested}: the version is published ahead "
                f"and starts signing at {self._activation(requested)}"
            )
        return self._existing(requested)

    def read_version(self, number: int) -> KeyVersion:
        """Check a version named by a signature or ciphertext for verify and decrypt."""
        if number < self.min_decryption_version:
            raise BadRequest(
                f"key version {number} is below the key's min_decryption_version "
                f"{self.min_decryption_version}"
            )
        if number > self.latest_version:
            raise BadRequest(
                f"key version {number} is too new: the latest version is "
                f"{self.latest_version}"
            )
        return self._existing(number)

    def readable_versions(self) -> list[KeyVersion]:
        """Versions from min_decryption_version to the latest, in order."""
        return [
            v
            for n, v in sorted(self.versions.items())
            if n >= self.min_decryption_version
        ]

    def _existing(self, number: int) -> KeyVersion:
        version = self.versions.get(number)
        if version is None:
            raise BadRequest(f"key version {number} has been trimmed")
        return version

    def _activation(self, number: int) -> str:
        return rfc3339(self.versions[number].activation_time)

    def add_version(self, version: KeyVersion) -> None:
        self.versions[version.number] = version
        self.latest_version = version.number

    # -- rotation schedule -----------------------------------------------

    def last_rotation_time(self) -> float:
        return self.versions[self.latest_version].creation_time

    def next_rotation_time(self) -> float | None:
        if not self.auto_rotate_period or not self.versions:
            return None
        return self.last_rotation_time() + self.auto_rotate_period

    def rotation_due(self, now: float) -> bool:
        due = self.next_rotation_time()
        return due is not None and due <= now

    def next_key_change(self, now: float) -> float | None:
        """The next time the published set or the signing version changes."""
        times = [v.activation_time for v in self.pending_versions(now)]
        rotation = self.next_rotation_time()
        if rotation is not None:
            times.append(rotation)
        return min(times) if times else None

    # -- options -------------------------------------------------------------

    def configure(self, values: dict[str, Any]) -> list[str]:
        """Apply keys/NAME/config options; return warnings.

        Raises BadRequest on the first invalid value. Call it on a copy so
        that a rejected request leaves the stored key unchanged.
        """
        warnings: list[str] = []
        _check_durations(values)
        self._configure_versions(values)
        for name in ("exportable", "allow_plaintext_backup"):
            if name in values:
                warnings += self._set_once(name, values[name])
        if "deletion_allowed" in values:
            self.deletion_allowed = values["deletion_allowed"]
        if "auto_rotate_period" in values:
            self.auto_rotate_period = _rotate_period(values["auto_rotate_period"])
        self._configure_jwt(values)
        self._check_publish_ahead()
        return warnings

    def _configure_versions(self, values: dict[str, Any]) -> None:
        if "min_decryption_version" in values:
            number = self._bounded("min_decryption_version", values)
            if number < self.min_available_version:
                raise BadRequest(
                    f"invalid min_decryption_version {number}: below "
                    f"min_available_version {self.min_available_version}"
                )
            self.min_decryption_version = max(number, 1)
        if "min_encryption_version" in values:
            self.min_encryption_version = self._bounded(
                "min_encryption_version", values
            )
        minimum = self.min_encryption_version
        if minimum and minimum < self.min_decryption_version:
            raise BadRequest(
                f"invalid min_encryption_version {minimum}: it must be 0 or at "
                f"least min_decryption_version {self.min_decryption_version}"
            )

    def _bounded(self, name: str, values: dict[str, Any]) -> int:
        number = values[name]
        if number < 0:
            raise BadRequest(f"invalid {name} {number}: must not be negative")
        if number > self.latest_version:
            raise BadRequest(
                f"cannot set {name} to {number}: the latest key version is "
                f"{self.latest_version}"
            )
        return number

    def _set_once(self, name: str, enable: bool) -> list[str]:
        if enable:
            setattr(self, name, True)
            return []
        if getattr(self, name):
            return [f"{name} cannot be disabled once set; it stays true"]
        return []

    def _configure_jwt(self, values: dict[str, Any]) -> None:
        jwt_options = set(values) & set(JWT_OPTIONS)
        if jwt_options and not self.type.jwt_algorithms:
            raise BadRequest(
                f"invalid option {sorted(jwt_options)[0]}: key type "
                f"{self.type.name} does not sign JWTs"
            )
        if "publish" in values and values["publish"] and not self.type.asymmetric:
            raise BadRequest(
                f"invalid option publish: key type {self.type.name} has no "
                "public key to publish in a JWKS"
            )
        if "jwt_algorithm" in values:
            self.jwt_algorithm = _jwt_algorithm(self.type, values["jwt_algorithm"])
        if "jwt_max_ttl" in values:
            self.jwt_max_ttl = _positive("jwt_max_ttl", values["jwt_max_ttl"])
        if "jwt_leeway" in values:
            self.jwt_leeway = _leeway(values["jwt_leeway"])
        for name in ("publish_ahead", "jwt_issuer", "jwks_max_age", "publish"):
            if name in values:
                setattr(self, name, values[name])

    def _check_publish_ahead(self) -> None:
        if not self.publish_ahead:
            return
        if not self.type.asymmetric:
            raise BadRequest(
                f"invalid option publish_ahead: key type {self.type.name} has no "
                "public key to publish ahead"
            )
        if self.auto_rotate_period and self.publish_ahead >= self.auto_rotate_period:
            raise BadRequest(
                f"invalid publish_ahead {self.publish_ahead}s: it must be shorter "
                f"than auto_rotate_period {self.auto_rotate_period}s, or a new "
                "version would start signing only after the next rotation"
            )

    def check_signing_bounds(self, now: float) -> None:
        """Reject version minimums above the version that signs now.

        While a version is published ahead, the one before it still signs.
        A min_decryption_version above it would reject the tokens being
        issued and drop their key from the JWKS, and a min_encryption_version
        above it would start the pending version before verifiers that cache
        the key set have fetched it.
        """
        signing = self.signing_version(now)
        for name in ("min_decryption_version", "min_encryption_version"):
            number = getattr(self, name)
            if number > signing:
                raise BadRequest(
                    f"invalid {name} {number}: version {signing} signs until "
                    f"version {signing + 1} starts at {self._activation(signing + 1)}"
                )

    # -- trimming ----------------------------------------------------------

    def trim(self, min_available: int) -> list[int]:
        """Raise min_available_version; return the version numbers to delete."""
        if self.min_encryption_version == 0:
            raise BadRequest(
                "min_available_version cannot be set while min_encryption_version "
                "is 0 (the latest): set min_encryption_version first"
            )
        if min_available > self.min_encryption_version:
            raise BadRequest(
                f"invalid min_available_version {min_available}: above "
                f"min_encryption_version {self.min_encryption_version}"
            )
        if min_available > self.min_decryption_version:
            raise BadRequest(
                f"invalid min_available_version {min_available}: above "
                f"min_decryption_version {self.min_decryption_version}"
            )
        if min_available < self.min_available_version:
            raise BadRequest(
                f"invalid min_available_version {min_available}: it cannot be "
                f"lowered from {self.min_available_version}"
            )
        removed = [n for n in self.versions if n < min_available]
        for number in removed:
            del self.versions[number]
        self.min_available_version = min_available
        return sorted(removed)

    # -- storage -------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.name,
            "versions": {str(n): v.to_json() for n, v in self.versions.items()},
            **{name: getattr(self, name) for name in _PLAIN_FIELDS},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KeyPolicy:
        versions = {
            int(n): KeyVersion.from_json(int(n), v)
            for n, v in raw.get("versions", {}).items()
        }
        policy = cls(name=raw["name"], type=key_type(raw["type"]), versions=versions)
        for name in _PLAIN_FIELDS:
            if name in raw:
                setattr(policy, name, raw[name])
        return policy


_PLAIN_FIELDS = (
    "latest_version",
    "min_decryption_version",
    "min_encryption_version",
    "min_available_version",
    "deletion_allowed",
    "exportable",
    "allow_plaintext_backup",
    "derived",
    "convergent_encryption",
    "auto_rotate_period",
    "key_size",
    "publish_ahead",
    "jwt_max_ttl",
    "jwt_issuer",
    "jwt_algorithm",
    "jwt_leeway",
    "jwks_max_age",
    "publish",
    "backup_info",
    "restore_info",
)


JWT_OPTIONS = (
    "publish_ahead",
    "jwt_max_ttl",
    "jwt_issuer",
    "jwt_algorithm",
    "jwt_leeway",
    "jwks_max_age",
    "publish",
)
# A larger leeway would hide a badly set clock rather than tolerate skew.
MAX_JWT_LEEWAY = 300


def _check_durations(values: dict[str, Any]) -> None:
    for name in DURATION_OPTIONS:
        seconds = values.get(name)
        if seconds is not None and seconds > MAX_DURATION:
            raise BadRequest(
                f"invalid {name} {seconds}s: the maximum is {MAX_DURATION}s "
                "(2562047h47m16s)"
            )


def _rotate_period(seconds: int) -> int:
    if seconds and seconds < MIN_AUTO_ROTATE_PERIOD:
        raise BadRequest(
            f"invalid auto_rotate_period {seconds}s: must be 0 to disable, or "
            "at least 1h"
        )
    return seconds


def _jwt_algorithm(kind: KeyType, value: str) -> str:
    if value and value not in kind.jwt_algorithms:
        raise BadRequest(
            f"invalid jwt_algorithm {value!r} for key type {kind.name}: "
            f"expected one of {', '.join(kind.jwt_algorithms)}"
        )
    return value


def _positive(name: str, seconds: int) -> int:
    if seconds <= 0:
        raise BadRequest(f"invalid {name} {seconds}s: must be a positive duration")
    return seconds


def _leeway(seconds: int) -> int:
    if seconds > MAX_JWT_LEEWAY:
        raise BadRequest(
            f"invalid jwt_leeway {seconds}s: the maximum is {MAX_JWT_LEEWAY}s"
        )
    return seconds


def rfc3339(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
