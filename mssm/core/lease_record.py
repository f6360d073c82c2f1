"""A lease as stored, and the TTL arithmetic of issuing and renewing it.

Nothing here does I/O; the lease manager (leases.py) stores the records and
acts on them.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from mssm.core.durations import format_go_duration
from mssm.crypto.randomness import random_string

CREATING = "creating"
ACTIVE = "active"
REVOKE_PENDING = "revoke_pending"
IRREVOCABLE = "irrevocable"

LEASE_RANDOM_CHARS = 24
_BASE62 = string.ascii_letters + string.digits


@dataclass
class Lease:
    lease_id: str
    path: str
    mount_point: str
    mount_accessor: str
    token_hash: str
    issue_time: float
    expire_time: float
    # The latest expire_time that renewals may reach (issue time + max TTL).
    max_expire_time: float
    # The TTL a renewal without an increment grants.
    default_ttl: int
    renewable: bool = True
    last_renewal: float | None = None
    internal: dict[str, Any] = field(default_factory=dict)
    state: str = CREATING
    revoke_attempts: int = 0
    revoke_error: str = ""
    next_attempt: float = 0.0
    # Warnings for the response that issues the lease; never stored.
    warnings: list[str] = field(default_factory=list)

    def due_time(self) -> float | None:
        """Return when the expiry task must next act on this lease."""
        if self.state == ACTIVE:
            return self.expire_time
        if self.state in (REVOKE_PENDING, IRREVOCABLE):
            return self.next_attempt
        return None

    def to_record(self) -> dict[str, Any]:
        """Return the fields to store, without the warnings.

        The record shares internal with the lease, because it goes straight
        to JSON: a deep copy with dataclasses.asdict took longer than the
        rest of a lease save.
        """
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Lease:
        return cls(**record)


_RECORD_FIELDS = tuple(f.name for f in fields(Lease) if f.name != "warnings")


@dataclass(frozen=True)
class Limits:
    """The TTL limits a new lease starts from, in seconds (0: none)."""

    mount_default: int
    mount_max: int
    # What is left of the requesting token's life; None if it never expires.
    token_left: int | None = None


def resolve_ttls(ttl: int, max_ttl: int, limits: Limits) -> tuple[int, int, list[str]]:
    """Return the granted TTL, the max TTL and warnings for a new lease.

    ttl and max_ttl are the engine's request (0: the mount's defaults). A
    role's max_ttl above the mount's is cut to the mount's, a TTL above the
    max TTL is cut to it, and both are cut to the token's remaining life,
    because a lease must not outlive the token that holds it.
    """
    warnings: list[str] = []
    maximum = limits.mount_max
    if max_ttl and max_ttl <= limits.mount_max:
        maximum = max_ttl
    elif max_ttl:
        limit = "the mount's max TTL"
        warnings.append(cap_warning("max_ttl", max_ttl, limit, limits.mount_max))

    granted = ttl or limits.mount_default
    if granted > maximum:
        if ttl:
            warnings.append(cap_warning("TTL", ttl, "the effective max_ttl", maximum))
        granted = maximum

    left = limits.token_left
    if left is not None and granted > left:
        warnings.append(cap_warning("TTL", granted, "the remaining token TTL", left))
        granted = left
        maximum = min(maximum, left)
    return granted, maximum, warnings


def renewal_ttl(requested: int, now: float, limit: float) -> tuple[int, list[str]]:
    """Return the TTL a renewal grants from now, cut to end by limit.

    The grant is whole seconds rounded down, as Vault's is.
    """
    allowed = max(int(limit - now), 0)
    if requested <= allowed:
        return requested, []
    return allowed, [cap_warning("TTL", requested, "the effective max_ttl", allowed)]


def token_remaining(token: Any, now: float) -> int | None:
    """Return the seconds token has left, or None if it never expires."""
    expire_time = getattr(token, "expire_time", 0) or 0
    if not expire_time:
        return None
    return max(int(expire_time - now), 0)


def cap_warning(name: str, requested: int, limit: str, allowed: int) -> str:
    return (
        f'{name} of "{format_go_duration(requested)}" exceeded {limit} of '
        f'"{format_go_duration(allowed)}"; {name} value is capped accordingly'
    )


def format_time(timestamp: float | None) -> str | None:
    """Format a Unix time as RFC 3339 in UTC, as Vault's lease responses do."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_lease_id(path: str) -> str:
    """Return `<path>/<24 random base62 characters>`, as Vault's lease ids are."""
    suffix = random_string(_BASE62, LEASE_RANDOM_CHARS)
    return f"{path}/{suffix}"


def lease_hash(lease_id: str) -> str:
    return hashlib.sha256(lease_id.encode()).hexdigest()


def normalize_prefix(prefix: str) -> str:
    # Vault treats a prefix as whole path segments: "creds/app" must not
    # match "creds/app2/...".
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""
