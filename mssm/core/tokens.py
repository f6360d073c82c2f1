"""Token store: token entries kept under a keyed hash of the token id.

The token id itself is never stored. Lookups hash the presented token with
HMAC-SHA256 under a salt key kept in the barrier, so a copy of storage does
not yield usable tokens. Every entry is cached in memory after unseal, so
the request path does no storage read for a known token.

Storage layout (a view under sys/token/):
    salt                         the HMAC key of token ids
    id/<hash>                    the TokenEntry
    accessor/<accessor>          {"id_hash": <hash>}
    parent/<parent>/<child>      the token tree, for revoking subtrees
    role/<name>                  token roles
    tune                         the token mount's default and max TTL
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mssm.core.barrier import StorageView
from mssm.core.errors import BadRequest, PermissionDenied
from mssm.core.token_rules import (
    CreateRequest,
    RenewalTerms,
    TokenLimits,
    TokenRole,
    TokenTerms,
    renew_terms,
)
from mssm.crypto.randomness import random_string

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "hvs."
ROOT_TOKEN_RANDOM_CHARS = 24
TOKEN_RANDOM_CHARS = 24
ACCESSOR_CHARS = 24
# num_uses after the last permitted use: the entry is revoked once the
# request that used it is done, and no further request may use it.
EXHAUSTED = -1
EXPIRY_CHECK_SECONDS = 1.0
_BASE62 = string.ascii_letters + string.digits

LeaseRevoker = Callable[[str], Awaitable[None]]


def generate_token_id(length: int = TOKEN_RANDOM_CHARS) -> str:
    """Return 'hvs.' and length base62 characters (24 give 142 bits)."""
    return SERVICE_PREFIX + random_string(_BASE62, length)


def generate_accessor() -> str:
    return random_string(_BASE62, ACCESSOR_CHARS)


@dataclass
class TokenEntry:
    id_hash: str
    accessor: str
    policies: list[str]
    parent_hash: str = ""
    display_name: str = "token"
    meta: dict[str, str] = field(default_factory=dict)
    creation_time: float = field(default_factory=time.time)
    # The TTL granted by the last creation or renewal, in seconds.
    ttl: int = 0
    creation_ttl: int = 0
    expire_time: float = 0.0
    explicit_max_ttl: int = 0
    num_uses: int = 0
    renewable: bool = False
    orphan: bool = False
    period: int = 0
    path: str = "auth/token/create"
    type: str = "service"
    role: str = ""
    last_renewal_time: float = 0.0

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def expired(self, now: float) -> bool:
        return bool(self.expire_time) and now >= self.expire_time

    def remaining(self, now: float) -> int:
        if not self.expire_time:
            return 0
        return max(0, int(self.expire_time - now))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class TokenStore:
    """Token entries, roles and the token mount's TTLs, cached after unseal.

    NOTE: the cache is per process. A token revoked or used up through
    another node or worker stays valid here until this process reloads.
    Expired tokens are rejected everywhere, but the revocation at expiry
    (children and leases) runs only in processes that have the token cached.
    """

    def __init__(self, storage: StorageView) -> None:
        self.storage = storage
        self._salt: bytes = b""
        self._cache: dict[str, TokenEntry] = {}
        self._expiry: list[tuple[float, str]] = []
        # Tokens whose revocation has begun: they authenticate no request,
        # and a child stored meanwhile is revoked at once (see create).
        self._revoking: set[str] = set()
        self._roles: dict[str, TokenRole] = {}
        self._tune: dict[str, int] = {}
        self._system = TokenLimits(768 * 3600, 768 * 3600)
        self._clock: Callable[[], float] = time.time
        self._revoke_leases: LeaseRevoker | None = None
        self._task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------

    async def load(self) -> None:
        """Read the salt, every token, the roles and the tune after unseal."""
        salt = await self.storage.get("salt")
        if salt is None:
            salt = secrets.token_bytes(32)
            await self.storage.put("salt", salt)
        self._salt = salt
        self._cache = {}
        self._expiry = []
        for key in await self.storage.list("id/"):
            raw = await self.storage.get_json(f"id/{key}")
            if raw is not None:
                self._remember(TokenEntry.from_dict(raw))
        self._roles = {}
        for name in await self.storage.list("role/"):
            raw = await self.storage.get_json(f"role/{name}")
            if raw is not None:
                self._roles[name] = TokenRole.from_dict(raw)
        self._tune = await self.storage.get_json("tune") or {}
        logger.info("token store loaded: %d tokens", len(self._cache))

    def start(
        self,
        clock: Callable[[], float],
        revoke_leases: LeaseRevoker,
        system_limits: TokenLimits,
    ) -> None:
        """Start revoking tokens as they expire.

        revoke_leases takes a token's id hash and revokes the leases it created.
        """
        self._clock = clock
        self._revoke_leases = revoke_leases
        self._system = system_limits
        if self._task is None:
            self._task = asyncio.create_task(self._expire_loop(), name="token-expiry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_CHECK_SECONDS)
            try:
                await self.revoke_expired(self._clock())
            except Exception:
                logger.exception("revoking expired tokens failed; retrying")

    def _remember(self, entry: TokenEntry) -> None:
        self._cache[entry.id_hash] = entry
        if entry.expire_time:
            heapq.heappush(self._expiry, (entry.expire_time, entry.id_hash))

    # -- lookups -------------------------------------------------------------

    def hash_token(self, token_id: str) -> str:
        return hmac.digest(self._salt, token_id.encode(), hashlib.sha256).hex()

    async def lookup(
        self, token_id: str, now: float | None = None
    ) -> TokenEntry | None:
        """Return the live entry for token_id, or None if unknown or expired."""
        if not token_id:
            return None
        id_hash = self.hash_token(token_id)
        entry = await self.lookup_hash(id_hash)
        if entry is None or not hmac.compare_digest(entry.id_hash, id_hash):
            return None
        if entry.num_uses == EXHAUSTED or id_hash in self._revoking:
            return None
        now = time.time() if now is None else now
        if entry.expired(now) or self._ancestor_expired(entry, now):
            return None
        return entry

    def _ancestor_expired(self, entry: TokenEntry, now: float) -> bool:
        # The expiry task revokes an expired token's subtree within
        # EXPIRY_CHECK_SECONDS, and after an unseal only once it first runs;
        # until then the children must not outlive their expired ancestor.
        parent_hash = entry.parent_hash
        while parent_hash:
            parent = self._cache.get(parent_hash)
            if parent is None:
                return False
            if parent.expired(now):
                return True
            parent_hash = parent.parent_hash
        return False

    async def lookup_hash(self, id_hash: str) -> TokenEntry | None:
        entry = self._cache.get(id_hash)
        if entry is not None:
            return entry
        # Another node or worker may have created the token since load().
        raw = await self.storage.get_json(f"id/{id_hash}")
        if raw is None:
            return None
        entry = TokenEntry.from_dict(raw)
        self._remember(entry)
        return entry

    async def lookup_accessor(self, accessor: str, now: float) -> TokenEntry | None:
        if not accessor:
            return None
        raw = await self.storage.get_json(f"accessor/{accessor}")
        if raw is None:
            return None
        entry = await self.lookup_hash(raw["id_hash"])
        if entry is None or entry.expired(now) or entry.num_uses == EXHAUSTED:
            return None
        return entry

    async def accessors(self) -> list[str]:
        return await self.storage.list("accessor/")

    # -- creation ------------------------------------------------------------

    async def create_root(self, display_name: str = "root", token_id: str = "") -> str:
        token_id = token_id or generate_token_id(ROOT_TOKEN_RANDOM_CHARS)
        entry = TokenEntry(
            id_hash=self.hash_token(token_id),
            accessor=generate_accessor(),
            policies=["root"],
            display_name=display_name,
            orphan=True,
            path="auth/token/root",
        )
        await self.store(entry)
        logger.info("root token created: accessor=%s", entry.accessor)
        return token_id

    async def create(
        self,
        parent: TokenEntry | None,
        terms: TokenTerms,
        request: CreateRequest,
        path: str,
        role: str = "",
    ) -> tuple[str, TokenEntry]:
        """Store a new token with terms, and return its id and entry."""
        now = self._clock()
        token_id = generate_token_id()
        entry = TokenEntry(
            id_hash=self.hash_token(token_id),
            accessor=generate_accessor(),
            policies=terms.policies,
            parent_hash="" if terms.orphan or parent is None else parent.id_hash,
            display_name=terms.display_name,
            meta=dict(request.meta),
            creation_time=now,
            ttl=terms.ttl,
            creation_ttl=terms.ttl,
            expire_time=now + terms.ttl if terms.ttl else 0.0,
            explicit_max_ttl=terms.explicit_max_ttl,
            num_uses=request.num_uses,
            renewable=terms.renewable,
            orphan=terms.orphan or parent is None,
            period=terms.period,
            path=path,
            role=role,
        )
        await self.store(entry)
        if entry.parent_hash and not await self.is_live(entry.parent_hash, now):
            # The parent's revocation began while this child was stored, and
            # may have listed the parent's children before this one.
            await self.revoke_tree(entry.id_hash, "parent token revoked")
            raise PermissionDenied()
        return token_id, entry

    async def is_live(self, id_hash: str, now: float) -> bool:
        """Return whether the token exists, is not expired and not being revoked.

        A token on its last use counts as live: the request using it ends it.
        """
        entry = await self.lookup_hash(id_hash)
        if entry is None or id_hash in self._revoking:
            return False
        return not entry.expired(now)

    async def store(self, entry: TokenEntry) -> None:
        await self.storage.put_json(f"id/{entry.id_hash}", entry.to_dict())
        await self.storage.put_json(
            f"accessor/{entry.accessor}", {"id_hash": entry.id_hash}
        )
        if entry.parent_hash:
            await self.storage.put_json(
                f"parent/{entry.parent_hash}/{entry.id_hash}", 1
            )
        self._remember(entry)

    # -- use and renewal -----------------------------------------------------

    async def use(self, entry: TokenEntry) -> None:
        """Count one use of a token with a use limit, and persist the count.

        NOTE: the decrement is atomic within this process only. Two worker
        processes sharing storage could each grant the last use once.
        """
        if entry.num_uses <= 0:
            return
        entry.num_uses -= 1
        if entry.num_uses == 0:
            entry.num_uses = EXHAUSTED
        await self.storage.put_json(f"id/{entry.id_hash}", entry.to_dict())

    def limits(self) -> TokenLimits:
        default = self._tune.get("default_lease_ttl") or self._system.default_ttl
        maximum = self._tune.get("max_lease_ttl") or self._system.max_ttl
        return TokenLimits(min(default, maximum), maximum)

    def tune_values(self) -> dict[str, int]:
        limits = self.limits()
        return {
            "default_lease_ttl": limits.default_ttl,
            "max_lease_ttl": limits.max_ttl,
        }

    async def set_tune(self, default_ttl: int | None, max_ttl: int | None) -> None:
        """Set the token mount's TTLs, where 0 stands for the system value."""
        tune = dict(self._tune)
        if default_ttl is not None:
            tune["default_lease_ttl"] = default_ttl
        if max_ttl is not None:
            tune["max_lease_ttl"] = max_ttl
        maximum = tune.get("max_lease_ttl") or self._system.max_ttl
        if tune.get("default_lease_ttl", 0) > maximum:
            raise BadRequest(
                f"default_lease_ttl ({tune['default_lease_ttl']}s) must not exceed "
                f"max_lease_ttl ({maximum}s)"
            )
        await self.storage.put_json("tune", tune)
        self._tune = tune

    async def renew(self, entry: TokenEntry, increment: int) -> RenewalTerms:
        """Extend entry's life from now; raise BadRequest if it cannot renew."""
        if not entry.renewable:
            raise BadRequest("lease is not renewable")
        role = None
        if entry.role:
            role = self._roles.get(entry.role)
            if role is None:
                raise BadRequest(
                    f"original token role {entry.role!r} could not be found, "
                    "not renewing"
                )
        now = self._clock()
        terms = renew_terms(
            creation_time=entry.creation_time,
            current_ttl=entry.ttl,
            period=entry.period,
            explicit_max_ttl=entry.explicit_max_ttl,
            increment=increment,
            role=role,
            limits=self.limits(),
            now=now,
        )
        entry.ttl = terms.ttl
        entry.expire_time = now + terms.ttl
        entry.last_renewal_time = now
        await self.storage.put_json(f"id/{entry.id_hash}", entry.to_dict())
        heapq.heappush(self._expiry, (entry.expire_time, entry.id_hash))
        return terms

    # -- revocation ----------------------------------------------------------

    async def revoke_tree(self, id_hash: str, reason: str) -> int:
        """Revoke a token, its descendants and their leases, and return the count.

        Descendants go first, so no child is ever left without its parent.
        """
        order: list[str] = []
        pending = [id_hash]
        while pending:
            current = pending.pop()
            self._revoking.add(current)
            order.append(current)
            pending.extend(await self._children(current))
        for current in reversed(order):
            cause = reason if current == id_hash else "parent token revoked"
            await self._revoke_one(current, cause)
        return len(order)

    async def revoke_orphan(self, id_hash: str, reason: str) -> None:
        """Revoke one token and make its children orphans."""
        for child_hash in await self._children(id_hash):
            child = await self.lookup_hash(child_hash)
            await self.storage.delete(f"parent/{id_hash}/{child_hash}")
            if child is None:
                continue
            child.parent_hash = ""
            child.orphan = True
            await self.storage.put_json(f"id/{child_hash}", child.to_dict())
        await self._revoke_one(id_hash, reason)

    async def _children(self, id_hash: str) -> list[str]:
        return [k.rstrip("/") for k in await self.storage.list(f"parent/{id_hash}/")]

    async def _revoke_one(self, id_hash: str, reason: str) -> None:
        try:
            await self._delete_token(id_hash, reason)
        finally:
            self._revoking.discard(id_hash)

    async def _delete_token(self, id_hash: str, reason: str) -> None:
        entry = await self.lookup_hash(id_hash)
        await self._revoke_token_leases(id_hash)
        self._cache.pop(id_hash, None)
        await self.storage.delete(f"id/{id_hash}")
        if entry is None:
            return
        await self.storage.delete(f"accessor/{entry.accessor}")
        if entry.parent_hash:
            await self.storage.delete(f"parent/{entry.parent_hash}/{id_hash}")
        logger.info("token revoked: accessor=%s reason=%s", entry.accessor, reason)

    async def _revoke_token_leases(self, id_hash: str) -> None:
        if self._revoke_leases is None:
            return
        try:
            await self._revoke_leases(id_hash)
        except Exception:
            # The lease manager keeps failed revocations and retries them, so
            # the token itself is revoked either way.
            logger.exception("revoking the leases of a revoked token failed")

    async def revoke_expired(self, now: float) -> int:
        """Revoke every token whose expire time has passed, and return the count."""
        revoked = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, id_hash = heapq.heappop(self._expiry)
            entry = self._cache.get(id_hash)
            # A renewal pushes a later entry, so an earlier one is stale.
            if entry is None or not entry.expired(now):
                continue
            revoked += await self.revoke_tree(id_hash, "expired")
        return revoked

    # -- roles ---------------------------------------------------------------

    def role(self, name: str) -> TokenRole | None:
        return self._roles.get(name)

    def role_names(self) -> list[str]:
        return sorted(self._roles)

    async def put_role(self, role: TokenRole) -> None:
        await self.storage.put_json(f"role/{role.name}", role.to_dict())
        self._roles[role.name] = role

    async def delete_role(self, name: str) -> None:
        await self.storage.delete(f"role/{name}")
        self._roles.pop(name, None)
