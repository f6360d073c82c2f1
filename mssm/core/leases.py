"""The lease manager: every dynamic secret's lease, from issue to revocation.

Storage layout under sys/expire/, through the barrier:

    id/<lease id>                     the lease record (JSON)
    token/<token hash>/<lease hash>   the lease id, indexed by its token

Lease ids are `<request path>/<random>`, as Vault's are, so the id/ tree is
also the prefix index that revoke-prefix and LIST walk.

Issuing is two-phase, so that a crash never leaves a secret without a lease.
The engine calls `reserve` before it creates anything, which stores the
lease as "creating". The core then calls `register` with the engine's
response, which makes the lease "active". A lease still "creating" at
unseal belongs to a request that never finished, and is revoked.

One task checks a heap of deadlines every TICK_SECONDS against the core's
clock. A failed revocation stays stored as "revoke_pending" and is retried
with exponential backoff. After MAX_ATTEMPTS failures the lease is
"irrevocable": it is still retried at the backoff cap, and revoke-force
drops it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from mssm.core import metrics
from mssm.core.barrier import StorageView
from mssm.core.errors import APIError, BadRequest, PermissionDenied
from mssm.core.lease_record import (
    ACTIVE,
    CREATING,
    IRREVOCABLE,
    REVOKE_PENDING,
    Lease,
    Limits,
    format_time,
    lease_hash,
    new_lease_id,
    normalize_prefix,
    renewal_ttl,
    resolve_ttls,
    token_remaining,
)
from mssm.core.request import Request, Response
from mssm.core.tokens import EXHAUSTED

if TYPE_CHECKING:
    from mssm.core.core import Core
    from mssm.engines.base import Engine

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.5
REVOKE_TIMEOUT_SECONDS = 60.0
# Revocations that run at once, so that a burst of expiries does not queue
# hundreds of tasks on one database pool.
REVOKE_CONCURRENCY = 8
MAX_ERROR_CHARS = 240

# Retry schedule; tests shorten it through the environment.
RETRY_BASE_SECONDS = float(os.environ.get("MSSM_LEASE_RETRY_BASE_SECONDS", "10"))
RETRY_MAX_SECONDS = float(os.environ.get("MSSM_LEASE_RETRY_MAX_SECONDS", "3600"))
MAX_ATTEMPTS = int(os.environ.get("MSSM_LEASE_MAX_ATTEMPTS", "6"))


class RevocationError(APIError):
    """The secrets engine failed to revoke a lease; the lease is kept."""

    status = 400


class LeaseManager:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.storage = StorageView(core.barrier, "sys/expire/")
        self._leases: dict[str, Lease] = {}
        self._heap: list[tuple[float, str]] = []
        self._counts: Counter[str] = Counter()
        self._inflight: dict[str, asyncio.Task] = {}
        # One lock per lease, held by renewals and revocations, so that they
        # never run on one lease at once.
        self._lease_locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self._revoke_slots = asyncio.Semaphore(REVOKE_CONCURRENCY)

    def now(self) -> float:
        return self.core.clock()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Load leases after unseal and start the expiry task."""
        self._reset_memory()
        for lease in await self._load_all():
            if lease.state == CREATING:
                # The request that reserved it died with the last process.
                lease.state = REVOKE_PENDING
                lease.next_attempt = self.now()
                lease.revoke_error = "issued while the server stopped"
                await self._save(lease)
            self._remember(lease)
        self._publish_counts()
        logger.info("lease manager loaded %d leases", len(self._leases))
        self._loop_task = asyncio.create_task(self._run(), name="lease-expiry")

    async def stop(self) -> None:
        """Stop the expiry task and every revocation in flight at seal."""
        tasks = [self._loop_task, *self._inflight.values(), *self._background]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *[t for t in tasks if t is not None], return_exceptions=True
        )
        self._loop_task = None
        self._reset_memory()
        self._publish_counts()

    def _reset_memory(self) -> None:
        self._leases = {}
        self._heap = []
        self._counts = Counter()
        self._inflight = {}
        self._lease_locks = {}
        self._background = set()

    async def _load_all(self) -> list[Lease]:
        leases = []
        for key in await self._walk("id/"):
            record = await self.storage.get_json(key)
            if record is not None:
                leases.append(Lease.from_record(record))
        return leases

    async def _walk(self, prefix: str) -> list[str]:
        """Return every key under prefix, depth first; storage bounds it."""
        keys: list[str] = []
        folders = [prefix]
        while folders:
            folder = folders.pop()
            for child in await self.storage.list(folder):
                if child.endswith("/"):
                    folders.append(folder + child)
                else:
                    keys.append(folder + child)
        return keys

    # -- issuing -------------------------------------------------------------

    async def reserve(
        self,
        req: Request,
        ttl: int = 0,
        max_ttl: int = 0,
        internal: dict[str, Any] | None = None,
    ) -> Lease:
        """Store a lease in state "creating" before the engine makes a secret.

        ttl and max_ttl are the engine's wishes (0: the mount's defaults);
        the returned lease carries the TTL granted after the mount, system
        and token limits, so that the engine can set the same expiry on the
        secret it creates.
        """
        now = self.now()
        granted, maximum, warnings = self._resolve_ttls(req, ttl, max_ttl, now)
        lease = Lease(
            lease_id=new_lease_id(req.path.rstrip("/")),
            path=req.path.rstrip("/"),
            mount_point=req.mount_point,
            mount_accessor=req.mount_accessor,
            token_hash=getattr(req.token, "id_hash", "") or "",
            issue_time=now,
            expire_time=now + granted,
            max_expire_time=now + maximum,
            default_ttl=granted,
            internal=dict(internal or {}),
            warnings=warnings,
        )
        await self._save(lease)
        if lease.token_hash:
            await self.storage.put(self._token_key(lease), lease.lease_id.encode())
        self._remember(lease)
        self._publish_counts()
        return lease

    async def register(self, req: Request, resp: Response) -> None:
        """Make the response's lease active and fill in the envelope fields."""
        secret = resp.secret
        assert secret is not None
        lease = self._leases.get(resp.lease_id) if resp.lease_id else None
        if lease is None or lease.state != CREATING:
            lease = await self.reserve(req, secret.ttl, secret.max_ttl)
        lease.internal = dict(secret.internal)
        lease.renewable = secret.renewable
        if getattr(req.token, "num_uses", 0) == EXHAUSTED:
            await self._refuse_last_use(lease)
        self._set_state(lease, ACTIVE)
        try:
            await self._save(lease)
        except Exception:
            await self.abandon(lease.lease_id, "the lease could not be stored")
            raise
        if not await self._token_live(lease):
            # The token's revocation began while the engine made the secret,
            # so revoke_by_token may have run before this lease was active.
            await self.abandon(lease.lease_id, "its token was revoked meanwhile")
            raise PermissionDenied()
        self._schedule(lease)
        resp.lease_id = lease.lease_id
        resp.lease_duration = int(round(lease.expire_time - lease.issue_time))
        resp.renewable = lease.renewable
        resp.warnings.extend(lease.warnings)
        lease.warnings = []

    async def _token_live(self, lease: Lease) -> bool:
        if not lease.token_hash:
            return True
        return await self.core.tokens.is_live(lease.token_hash, self.now())

    async def _refuse_last_use(self, lease: Lease) -> None:
        """Revoke a secret created with a token's last use, and raise.

        The token is revoked when this request ends, and its leases with
        it, so the client would get credentials that no longer work. OpenBao
        (bao server -dev) responds the same way, with a 400 and this message.
        """
        error = await self._attempt(lease, "token")
        if error is not None:
            logger.warning(
                "lease %s of a used-up token stays pending: %s", lease.lease_id, error
            )
        raise BadRequest(
            "Secret cannot be returned; token had one use left, so leased "
            "credentials were immediately revoked."
        )

    async def cancel(self, lease_id: str) -> None:
        """Drop a reservation whose secret was never created."""
        lease = self._leases.get(lease_id)
        if lease is not None and lease.state == CREATING:
            await self._forget(lease)

    async def abandon(self, lease_id: str, reason: str) -> None:
        """Revoke a reservation whose secret may exist but was not issued."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        lease.revoke_error = reason[:MAX_ERROR_CHARS]
        lease.next_attempt = self.now()
        self._set_state(lease, REVOKE_PENDING)
        try:
            await self._save(lease)
        except Exception:
            logger.exception("could not store abandoned lease %s", lease_id)
        self._schedule(lease)

    def _resolve_ttls(
        self, req: Request, ttl: int, max_ttl: int, now: float
    ) -> tuple[int, int, list[str]]:
        config = self.core.config
        mount = self.core.mounts.entries.get(req.mount_point)
        mount_default = mount.default_lease_ttl if mount else 0
        mount_max = mount.max_lease_ttl if mount else 0
        limits = Limits(
            mount_default=mount_default or config.default_lease_ttl,
            mount_max=mount_max or config.max_lease_ttl,
            token_left=token_remaining(req.token, now),
        )
        return resolve_ttls(ttl, max_ttl, limits)

    # -- lookup and renewal ---------------------------------------------------

    def get(self, lease_id: str) -> Lease | None:
        return self._leases.get(lease_id)

    def describe(self, lease_id: str) -> dict[str, Any]:
        """Return the lookup response data for lease_id; BadRequest if unknown."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise BadRequest("invalid lease")
        ttl = max(int(lease.expire_time - self.now()), 0)
        if lease.state != ACTIVE:
            ttl = 0
        answer = {
            "id": lease.lease_id,
            "issue_time": format_time(lease.issue_time),
            "expire_time": format_time(lease.expire_time),
            "last_renewal": format_time(lease.last_renewal),
            "path": lease.path,
            "renewable": lease.renewable and lease.state == ACTIVE,
            "ttl": ttl,
            "state": lease.state,
        }
        if lease.state in (REVOKE_PENDING, IRREVOCABLE):
            answer["revoke_attempts"] = lease.revoke_attempts
            answer["revoke_error"] = lease.revoke_error
            answer["next_revoke_attempt"] = format_time(lease.next_attempt)
        return answer

    async def list_prefix(self, prefix: str) -> list[str]:
        return await self.storage.list("id/" + normalize_prefix(prefix))

    async def renew(self, lease_id: str, increment: int) -> Response:
        """Extend a lease from now by increment (or its default TTL).

        Renewals of one lease run one at a time, and never during its
        revocation: PostgreSQL fails concurrent ALTER ROLEs on one role with
        "tuple concurrently updated", and a renewal that finished after the
        revocation would store the revoked lease again.
        """
        if lease_id not in self._leases:
            raise BadRequest("lease not found")
        async with self._lock(lease_id):
            return await self._renew_locked(lease_id, increment)

    async def _renew_locked(self, lease_id: str, increment: int) -> Response:
        now = self.now()
        lease = self._renewable(lease_id, now)
        requested = increment or lease.default_ttl
        granted, warnings = await self._renewal_ttl(lease, requested, now)

        engine = self._engine_for(lease)
        if engine is None:
            raise BadRequest(f"no secrets engine is mounted at {lease.mount_point}")
        try:
            await engine.renew_secret(lease.internal, granted)
        except APIError:
            raise
        except Exception as exc:
            raise BadRequest(
                f"failed to renew lease {lease_id}: {_describe(exc)}"
            ) from None

        lease.expire_time = now + granted
        lease.last_renewal = now
        await self._save(lease)
        self._schedule(lease)
        return Response(
            lease_id=lease_id,
            renewable=True,
            lease_duration=granted,
            warnings=warnings,
        )

    def _renewable(self, lease_id: str, now: float) -> Lease:
        lease = self._leases.get(lease_id)
        if lease is None:
            raise BadRequest("lease not found")
        if lease.state != ACTIVE or lease.expire_time <= now:
            raise BadRequest("lease expired")
        if not lease.renewable:
            raise BadRequest("lease is not renewable")
        return lease

    async def _renewal_ttl(
        self, lease: Lease, requested: int, now: float
    ) -> tuple[int, list[str]]:
        limit = lease.max_expire_time
        if lease.token_hash:
            token = await self.core.tokens.lookup_hash(lease.token_hash)
            token_left = token_remaining(token, now)
            if token_left is not None:
                limit = min(limit, now + token_left)
        return renewal_ttl(requested, now, limit)

    # -- revocation -----------------------------------------------------------

    async def revoke(self, lease_id: str, cause: str = "revoked") -> None:
        """Revoke one lease now; RevocationError if the engine fails.

        An unknown lease counts as revoked, as in Vault. A failed lease is
        kept as revoke_pending and retried by the expiry task.
        """
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        error = await self._attempt(lease, cause)
        if error is not None:
            raise RevocationError(f"failed to revoke lease {lease_id}: {error}")

    def revoke_in_background(self, lease_id: str) -> None:
        lease = self._leases.get(lease_id)
        if lease is not None:
            self._spawn(self._attempt(lease, "revoked"))

    async def revoke_prefix(self, prefix: str, force: bool = False) -> int:
        """Revoke every lease whose id starts with prefix; return the count.

        Without force, the first failure raises after every lease was tried.
        With force, failed leases are dropped from bookkeeping anyway.
        """
        prefix = normalize_prefix(prefix)
        leases = [
            lease for key, lease in self._leases.items() if key.startswith(prefix)
        ]
        cause = "forced" if force else "revoked"
        errors = await self._attempt_all(leases, cause)
        if force:
            for lease, error in errors:
                logger.warning(
                    "revoke-force dropped lease %s without revoking it: %s",
                    lease.lease_id,
                    error,
                )
                await self._forget(lease)
                metrics.lease_revocations.labels(cause).inc()
        elif errors:
            lease, error = errors[0]
            raise RevocationError(
                f"failed to revoke {len(errors)} of {len(leases)} leases under "
                f"{prefix!r}; first failure, {lease.lease_id}: {error}"
            )
        return len(leases)

    async def revoke_by_token(self, id_hash: str) -> None:
        """Revoke every lease created with the token whose hash is id_hash.

        Leases that fail stay revoke_pending and are retried; the token's own
        revocation goes ahead.
        """
        ids = {
            lid for lid, lease in self._leases.items() if lease.token_hash == id_hash
        }
        for key in await self.storage.list(f"token/{id_hash}/"):
            lease_id = await self.storage.get(f"token/{id_hash}/{key}")
            if lease_id is not None:
                ids.add(lease_id.decode())
        leases = [self._leases[lid] for lid in ids if lid in self._leases]
        errors = await self._attempt_all(leases, "token")
        for lease, error in errors:
            logger.warning(
                "lease %s of a revoked token stays pending: %s", lease.lease_id, error
            )

    async def revoke_mount(self, mount_point: str) -> None:
        """Revoke every lease issued under mount_point; raise if any fails."""
        leases = [
            lease for lease in self._leases.values() if lease.mount_point == mount_point
        ]
        errors = await self._attempt_all(leases, "revoked")
        if errors:
            lease, error = errors[0]
            raise RevocationError(
                f"failed to revoke {len(errors)} leases of mount {mount_point}; "
                f"first failure, {lease.lease_id}: {error}"
            )

    async def _attempt_all(
        self, leases: list[Lease], cause: str
    ) -> list[tuple[Lease, str]]:
        results = await asyncio.gather(
            *(self._attempt(lease, cause) for lease in leases)
        )
        return [
            (lease, error)
            for lease, error in zip(leases, results, strict=True)
            if error
        ]

    async def _attempt(self, lease: Lease, cause: str) -> str | None:
        """Revoke lease once, sharing an attempt already in flight.

        Returns None on success, else the error text (also stored on the lease).
        """
        task = self._inflight.get(lease.lease_id)
        if task is None:
            task = asyncio.ensure_future(self._revoke_once(lease, cause))
            self._inflight[lease.lease_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(lease.lease_id, None))
        return await asyncio.shield(task)

    async def _revoke_once(self, lease: Lease, cause: str) -> str | None:
        async with self._revoke_slots, self._lock(lease.lease_id):
            if self._leases.get(lease.lease_id) is not lease:
                # Revoked while this attempt waited; drop the lock it made.
                if lease.lease_id not in self._leases:
                    self._lease_locks.pop(lease.lease_id, None)
                return None
            try:
                await self._call_engine(lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _describe(exc)
                await self._record_failure(lease, error)
                return error
            await self._forget(lease)
            metrics.lease_revocations.labels(cause).inc()
            logger.info("revoked lease %s (%s)", lease.lease_id, cause)
            return None

    async def _call_engine(self, lease: Lease) -> None:
        engine = self._engine_for(lease)
        if engine is None:
            raise LookupError(f"no secrets engine is mounted at {lease.mount_point}")
        async with asyncio.timeout(REVOKE_TIMEOUT_SECONDS):
            await engine.revoke_secret(lease.internal)

    async def _record_failure(self, lease: Lease, error: str) -> None:
        now = self.now()
        lease.revoke_attempts += 1
        lease.revoke_error = error[:MAX_ERROR_CHARS]
        delay = min(
            RETRY_BASE_SECONDS * 2 ** (lease.revoke_attempts - 1), RETRY_MAX_SECONDS
        )
        lease.next_attempt = now + delay
        lease.expire_time = min(lease.expire_time, now)
        state = IRREVOCABLE if lease.revoke_attempts >= MAX_ATTEMPTS else REVOKE_PENDING
        self._set_state(lease, state)
        metrics.lease_revocation_failures.inc()
        logger.warning(
            "revoking lease %s failed (attempt %d, %s, next in %.0fs): %s",
            lease.lease_id,
            lease.revoke_attempts,
            state,
            delay,
            lease.revoke_error,
        )
        try:
            await self._save(lease)
        except Exception:
            logger.exception("could not store the failure of lease %s", lease.lease_id)
        self._schedule(lease)

    def _engine_for(self, lease: Lease) -> Engine | None:
        for engine in self.core.engines.values():
            if engine.ctx.mount.accessor == lease.mount_accessor:
                return engine
        return self.core.engines.get(lease.mount_point)

    # -- expiry ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                self.run_due()
            except Exception:
                logger.exception("lease expiry pass failed")
            await asyncio.sleep(TICK_SECONDS)

    def run_due(self) -> list[asyncio.Task]:
        """Start revoking every lease whose deadline has passed.

        Returns the started tasks, so that tests driving a fake clock can
        await them.
        """
        now = self.now()
        started = []
        while self._heap and self._heap[0][0] <= now:
            due, lease_id = heapq.heappop(self._heap)
            lease = self._leases.get(lease_id)
            if lease is None or lease.due_time() != due or lease_id in self._inflight:
                continue
            cause = "retried"
            if lease.state == ACTIVE:
                # Shown as pending from the deadline on, also while the first
                # attempt waits for an unreachable database.
                cause = "expired"
                lease.next_attempt = now
                self._set_state(lease, REVOKE_PENDING)
            started.append(self._spawn(self._attempt(lease, cause)))
        return started

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _schedule(self, lease: Lease) -> None:
        due = lease.due_time()
        if due is not None:
            heapq.heappush(self._heap, (due, lease.lease_id))

    # -- tidy and counts -------------------------------------------------------

    def tidy_in_background(self) -> None:
        self._spawn(self.tidy())

    async def tidy(self) -> None:
        """Revoke leases whose token is gone and drop stale index entries."""
        now = self.now()
        orphaned = []
        for lease in list(self._leases.values()):
            if not lease.token_hash or lease.state != ACTIVE:
                continue
            token = await self.core.tokens.lookup_hash(lease.token_hash)
            if token is None or token.expired(now):
                orphaned.append(lease)
        errors = await self._attempt_all(orphaned, "token")
        removed = await self._tidy_token_index()
        self._recount()
        logger.info(
            "lease tidy: %d leases without a live token revoked, %d failed, "
            "%d stale index entries removed",
            len(orphaned) - len(errors),
            len(errors),
            removed,
        )

    async def _tidy_token_index(self) -> int:
        removed = 0
        for key in await self._walk("token/"):
            lease_id = await self.storage.get(key)
            if lease_id is None or lease_id.decode() not in self._leases:
                await self.storage.delete(key)
                removed += 1
        return removed

    def count(self, state: str | None) -> dict[str, Any]:
        per_mount: Counter[str] = Counter()
        for lease in self._leases.values():
            if state is None or lease.state == state:
                per_mount[lease.mount_accessor] += 1
        return {"lease_count": sum(per_mount.values()), "counts": dict(per_mount)}

    def listing(self, state: str | None, limit: int) -> dict[str, Any]:
        """Return the leases in state (all if None), at most limit of them."""
        chosen = [
            lease
            for lease in self._leases.values()
            if state is None or lease.state == state
        ]
        if limit and len(chosen) > limit:
            raise BadRequest(
                f"{len(chosen)} leases match, more than the limit of {limit}; "
                'raise "limit" or set it to "none"'
            )
        chosen.sort(key=lambda lease: lease.lease_id)
        entries = [
            {
                "lease_id": lease.lease_id,
                "mount_id": lease.mount_accessor,
                "expire_time": format_time(lease.expire_time),
                "error": lease.revoke_error,
            }
            for lease in chosen
        ]
        return {"lease_count": len(entries), "leases": entries}

    # -- memory and storage ------------------------------------------------------

    def _lock(self, lease_id: str) -> asyncio.Lock:
        return self._lease_locks.setdefault(lease_id, asyncio.Lock())

    def _remember(self, lease: Lease) -> None:
        previous = self._leases.get(lease.lease_id)
        if previous is not None:
            self._counts[previous.state] -= 1
        self._leases[lease.lease_id] = lease
        self._counts[lease.state] += 1
        self._schedule(lease)

    def _set_state(self, lease: Lease, state: str) -> None:
        if lease.lease_id in self._leases:
            self._counts[lease.state] -= 1
            self._counts[state] += 1
        lease.state = state
        self._publish_counts()

    async def _forget(self, lease: Lease) -> None:
        await self.storage.delete("id/" + lease.lease_id)
        if lease.token_hash:
            await self.storage.delete(self._token_key(lease))
        if self._leases.get(lease.lease_id) is lease:
            del self._leases[lease.lease_id]
            self._counts[lease.state] -= 1
            self._lease_locks.pop(lease.lease_id, None)
        self._publish_counts()

    def _recount(self) -> None:
        self._counts = Counter(lease.state for lease in self._leases.values())
        self._publish_counts()

    def _publish_counts(self) -> None:
        for state in metrics.LEASE_STATES:
            metrics.leases.labels(state).set(self._counts.get(state, 0))

    async def _save(self, lease: Lease) -> None:
        await self.storage.put_json("id/" + lease.lease_id, lease.to_record())

    @staticmethod
    def _token_key(lease: Lease) -> str:
        return f"token/{lease.token_hash}/{lease_hash(lease.lease_id)}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return "; ".join(exc.messages) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"timed out after {REVOKE_TIMEOUT_SECONDS:.0f}s"
    return str(exc) or type(exc).__name__
