"""The transit engine: named keys that sign, verify, encrypt and issue JWTs
for applications that never hold the keys, with versioned rotation and a
JWKS document of the public keys."""

from __future__ import annotations

from mssm.engines.base import Engine, EngineContext
from mssm.engines.transit.backup import BackupPaths
from mssm.engines.transit.encrypt import EncryptPaths
from mssm.engines.transit.export import ExportPaths
from mssm.engines.transit.jwks import JWKSPaths
from mssm.engines.transit.jwt import JWTPaths
from mssm.engines.transit.key_routes import KeyPaths
from mssm.engines.transit.schedule import RotationScheduler
from mssm.engines.transit.sign import SignPaths
from mssm.engines.transit.store import KeyStore
from mssm.engines.transit.utility import UtilityPaths

_PATH_GROUPS = (
    KeyPaths,
    SignPaths,
    EncryptPaths,
    JWTPaths,
    JWKSPaths,
    ExportPaths,
    BackupPaths,
    UtilityPaths,
)


class TransitEngine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.store = KeyStore(ctx.storage)
        self.scheduler = RotationScheduler(self)
        self.routes = [
            route for group in _PATH_GROUPS for route in group(self).routes()
        ]

    def now(self) -> float:
        """Unix time from the core's clock, which tests may replace."""
        return self.ctx.core.clock()

    async def setup(self) -> None:
        await self.scheduler.start()

    async def teardown(self) -> None:
        await self.scheduler.stop()
        self.store.forget()


__all__ = ["TransitEngine"]
