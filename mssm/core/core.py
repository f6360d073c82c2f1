"""The core: seal state, routing, authentication, authorisation, audit and
leases around every request. It has no dependency on HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import orjson

from mssm.core.audit import AuditBroker
from mssm.core.barrier import Barrier, SealedError, StorageView
from mssm.core.config import Config
from mssm.core.errors import APIError, NotFound, PermissionDenied, Sealed
from mssm.core.leases import LeaseManager
from mssm.core.mounts import MOUNT_TABLE_PATH, MountEntry, MountTable
from mssm.core.policy import PolicyStore
from mssm.core.request import Request, Response
from mssm.core.seal import SealManager
from mssm.core.tokens import EXHAUSTED, TokenStore
from mssm.core.wrapping import WrappingStore
from mssm.engines.base import Engine, EngineContext, Route
from mssm.storage.base import Backend
from mssm.storage.cache import CachedBackend

logger = logging.getLogger(__name__)

ENGINE_GROUP = "mssm.engines"
# Served while sealed, without a token.
SEALED_PATHS = frozenset({"sys/seal-status", "sys/unseal", "sys/init", "sys/health"})
# Served without a token once unsealed; the quorum of unseal keys or a
# wrapping token authorises them instead.
QUORUM_PREFIXES = ("sys/rekey/", "sys/rekey-recovery-key/", "sys/generate-root/")
UNAUTHENTICATED_PATHS = frozenset({"sys/wrapping/unwrap", "sys/leader"})
# sys/ paths that need the sudo capability on top of the operation's own, as
# Vault marks them.
SUDO_PREFIXES = (
    "sys/audit",
    "sys/rotate",
    "sys/seal",
    "sys/step-down",
    "sys/raw",
    "sys/leases/revoke-prefix/",
    "sys/leases/revoke-force/",
    "sys/leases/lookup/",
    "sys/revoke-prefix/",
    "sys/revoke-force/",
    "auth/token/accessors",
    "auth/token/revoke-orphan",
    "sys/config/auditing",
    "sys/remount",
    "sys/storage/",
    "sys/generate-root",
    "sys/auth/",
    "sys/rekey",
)
INTERNAL_MOUNTS = ("sys/", "auth/token/")
# How long a seal waits for the requests already running to finish. Later
# requests get 503 meanwhile.
SEAL_DRAIN_SECONDS = 10.0


class Core:
    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.cache: CachedBackend | None = None
        if not config.disable_cache:
            backend = self.cache = CachedBackend(backend, config.cache_size)
        self.backend = backend
        self.barrier = Barrier(backend)
        self.seal_manager = SealManager(self.barrier)
        self.mounts = MountTable()
        self.engines: dict[str, Engine] = {}
        self.internal_engines: dict[str, Engine] = {}
        self.tokens = TokenStore(StorageView(self.barrier, "sys/token/"))
        self.policies = PolicyStore(StorageView(self.barrier, "sys/policy/"))
        self.audit = AuditBroker()
        self.leases = LeaseManager(self)
        wrap_storage = StorageView(self.barrier, "sys/wrap/")
        self.wrapping = WrappingStore(wrap_storage, self.tokens)
        self.clock = _clock(config.test_clock_offset)
        self._in_flight = 0
        self._sealing = False
        self._request_done = asyncio.Event()
        self.engine_types = _load_engine_types()
        self._build_internal_engines()

    def _build_internal_engines(self) -> None:
        from mssm.engines.sys import SystemEngine

        system_mount = MountEntry(path="sys/", type="system", uuid="system")
        self.internal_engines["sys/"] = SystemEngine(
            EngineContext(self, system_mount, StorageView(self.barrier, "sys/"))
        )
        token_cls = self.engine_types.get("token")
        if token_cls is not None:
            token_mount = MountEntry(path="auth/token/", type="token", uuid="token")
            self.internal_engines["auth/token/"] = token_cls(
                EngineContext(self, token_mount, StorageView(self.barrier, "sys/tk/"))
            )

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    # -- seal lifecycle ----------------------------------------------------

    async def post_unseal(self) -> None:
        """Load every subsystem from storage once the barrier has its keys."""
        await self.tokens.load()
        await self.policies.load()
        await self._load_mounts()
        for engine in self.internal_engines.values():
            await engine.setup()
        await self.leases.start()
        logger.info("core unsealed: %d mounts loaded", len(self.mounts.entries))

    async def seal(self, request: Request | None = None) -> None:
        """Seal once the requests in flight are done or SEAL_DRAIN_SECONDS passed.

        request is the sys/seal request being served, if any: its response
        is audited here, before the audit devices close.
        """
        self._sealing = True
        try:
            await self._drain(1 if request is not None else 0)
            if request is not None:
                await self.audit.log_response(request, Response(), None)
            await self._seal_now()
        finally:
            self._sealing = False

    async def _drain(self, own: int) -> None:
        deadline = time.monotonic() + SEAL_DRAIN_SECONDS
        while self._in_flight > own:
            self._request_done.clear()
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._request_done.wait(), remaining)
            except TimeoutError:
                logger.warning("sealing with %d requests running", self._in_flight)
                return

    async def _seal_now(self) -> None:
        await self.leases.stop()
        for engine in list(self.engines.values()):
            await _teardown(engine)
        for engine in self.internal_engines.values():
            await _teardown(engine)
        self.engines = {}
        self.mounts = MountTable()
        self.barrier.seal()
        if self.cache is not None:
            # Storage may be restored from a backup while the core is sealed.
            self.cache.clear()
        self.seal_manager.reset_progress()
        self.seal_manager.rekey = None
        logger.info("core sealed")

    async def _load_mounts(self) -> None:
        raw = await self.barrier.get(MOUNT_TABLE_PATH)
        self.mounts = MountTable.from_json(orjson.loads(raw) if raw else [])
        self.engines = {}
        for entry in self.mounts.entries.values():
            try:
                self.engines[entry.path] = await self._start_engine(entry)
            except Exception:
                logger.exception(
                    "mount %s (%s) failed to start", entry.path, entry.type
                )

    async def _start_engine(self, entry: MountEntry) -> Engine:
        engine_cls = self.engine_types.get(entry.type)
        if engine_cls is None:
            raise APIError(f"unknown secrets engine type {entry.type!r}", status=400)
        storage = StorageView(self.barrier, f"logical/{entry.uuid}/")
        engine = engine_cls(EngineContext(self, entry, storage))
        await engine.setup()
        return engine

    async def save_mounts(self) -> None:
        await self.barrier.put(MOUNT_TABLE_PATH, orjson.dumps(self.mounts.to_json()))

    async def mount(self, entry: MountEntry) -> None:
        self.mounts.check_new_path(entry.path)
        if entry.type not in self.engine_types or entry.type == "token":
            raise APIError(f"plugin not found in the catalog: {entry.type}", status=400)
        engine = await self._start_engine(entry)
        self.mounts.entries[entry.path] = entry
        self.engines[entry.path] = engine
        await self.save_mounts()
        logger.info("mounted %s engine at %s", entry.type, entry.path)

    async def unmount(self, path: str) -> None:
        """Revoke the mount's leases, then delete its engine and its data."""
        entry = self.mounts.entries.get(path)
        if entry is None:
            return
        await self.leases.revoke_mount(path)
        engine = self.engines.pop(path, None)
        if engine is not None:
            await _teardown(engine)
        del self.mounts.entries[path]
        await self.save_mounts()
        await StorageView(self.barrier, f"logical/{entry.uuid}/").delete_all()
        logger.info("unmounted %s", path)

    # -- requests ----------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        if req.path in SEALED_PATHS:
            return await self._handle_sealed_path(req)
        if self.barrier.sealed or self._sealing:
            raise Sealed()
        reason = self.backend.unavailable()
        if reason is not None:
            # Tokens, policies and cached values may be stale without storage.
            raise APIError(reason, status=503)
        self._in_flight += 1
        try:
            return await self._handle_unsealed(req)
        finally:
            self._in_flight -= 1
            if self._sealing:
                self._request_done.set()

    async def _handle_unsealed(self, req: Request) -> Response:
        engine, route = self._route(req)
        if route is None or engine is None:
            await self._authenticate(req)
            # A path the token may not use is a 403 whether it exists or not,
            # so that probing does not reveal mount names.
            await self._authorize(req)
            raise NotFound(f"no handler for route {req.path!r}. route entry not found.")
        if not self._unauthenticated(req, route):
            await self._authenticate(req)
        req.operation = await engine.resolve_operation(req, route)
        if req.token is not None:
            await self._authorize(req)
        return await self._execute(req, engine, route)

    async def _handle_sealed_path(self, req: Request) -> Response:
        system = self.internal_engines["sys/"]
        found = system.match(req.path[len("sys/") :])
        assert found is not None
        route, params = found
        req.params = params
        req.mount_point, req.relative_path = "sys/", req.path[len("sys/") :]
        return await system.handle(req, route)

    def _route(self, req: Request) -> tuple[Engine | None, Route | None]:
        engine, mount_point = self._engine_for(req.path)
        if engine is None:
            return None, None
        req.mount_point = mount_point
        req.mount_type = engine.ctx.mount.type
        req.mount_accessor = engine.ctx.mount.accessor
        req.relative_path = req.path[len(mount_point) :]
        found = engine.match(req.relative_path)
        if found is None:
            return engine, None
        route, req.params = found
        return engine, route

    def _engine_for(self, path: str) -> tuple[Engine | None, str]:
        for prefix in INTERNAL_MOUNTS:
            if path.startswith(prefix) or path + "/" == prefix:
                return self.internal_engines.get(prefix), prefix
        entry = self.mounts.match(path)
        if entry is None:
            return None, ""
        return self.engines.get(entry.path), entry.path

    def _unauthenticated(self, req: Request, route: Route) -> bool:
        if route.unauthenticated or req.path in UNAUTHENTICATED_PATHS:
            return True
        if req.path.startswith(QUORUM_PREFIXES) or req.path in (
            "sys/rekey",
            "sys/generate-root",
        ):
            return not self.config.listener.disable_unauthed_rekey_endpoints
        return False

    async def _authenticate(self, req: Request) -> None:
        entry = await self.tokens.lookup(req.client_token or "", self.clock())
        if entry is None:
            await self.audit.log_rejected(req, "permission denied")
            raise PermissionDenied()
        req.token = entry

    async def _authorize(self, req: Request) -> None:
        decision = await self.policies.check(
            req.token.policies, req.path, req.operation
        )
        if not decision.allowed or (_needs_sudo(req.path) and not decision.sudo):
            await self.audit.log_rejected(req, "permission denied")
            raise PermissionDenied()
        if req.token.num_uses > 0:
            await self.tokens.use(req.token)

    async def _execute(self, req: Request, engine: Engine, route: Route) -> Response:
        # A request that changes nothing has its request line written with
        # its response line, in one write instead of two.
        requested_at = None
        if (
            req.operation in route.effect_free
            and req.wrap_ttl is None
            and req.token is not None
            and req.token.num_uses == 0
        ):
            requested_at = time.time()
        else:
            await self.audit.log_request(req)
        try:
            resp = await engine.handle(req, route)
            if resp.secret is not None:
                await self.leases.register(req, resp)
            if req.wrap_ttl is not None:
                resp = await self.wrapping.wrap(req, resp, self.clock())
        except Exception as exc:
            if self.barrier.sealed:
                # The core sealed while this request ran: the audit devices
                # are closed, and a storage access failed for that reason.
                if isinstance(exc, SealedError):
                    raise Sealed() from None
                raise
            await self.audit.log_response(req, None, exc, requested_at)
            raise
        finally:
            # A token's last permitted use ends it once the request is done.
            if req.token is not None and req.token.num_uses == EXHAUSTED:
                await self.tokens.revoke_tree(req.token.id_hash, "use limit reached")
        if not self.barrier.sealed:
            await self.audit.log_response(req, resp, None, requested_at)
        elif requested_at is not None:
            # The core sealed while this request ran, and its request line
            # was waiting for the response line, so no device recorded it.
            raise Sealed()
        return resp


# The first segments of SUDO_PREFIXES ("sys/", "auth/"): most requests go to
# other mounts and are ruled out by one startswith.
_SUDO_ROOTS = tuple({prefix.split("/", 1)[0] + "/" for prefix in SUDO_PREFIXES})


def _needs_sudo(path: str) -> bool:
    if not path.startswith(_SUDO_ROOTS):
        return False
    for prefix in SUDO_PREFIXES:
        if prefix.endswith("/"):
            if path.startswith(prefix):
                return True
        elif path == prefix or path.startswith(prefix + "/"):
            return True
    return False


async def _teardown(engine: Engine) -> None:
    try:
        await engine.teardown()
    except Exception:
        logger.exception("engine teardown failed at %s", engine.ctx.mount.path)


def _clock(offset: int) -> Callable[[], float]:
    if not offset:
        return time.time
    logger.warning("the clock runs %d s ahead (test_clock_offset); tests only", offset)
    return lambda: time.time() + offset


def _load_engine_types() -> dict[str, Any]:
    types: dict[str, Any] = {}
    for point in entry_points(group=ENGINE_GROUP):
        try:
            types[point.name] = point.load()
        except Exception:
            logger.exception("failed to load secrets engine %s", point.name)
    return types


__all__ = ["Core"]
