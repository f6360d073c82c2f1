"""backup/ and restore/: a key with all its versions and options as one
base64 blob, for keys that allow plaintext backup and export.

The blob carries private key material unencrypted, which is why both
`exportable` and `allow_plaintext_backup` must be set. Its format is MSSM's
own and does not restore into Vault or OpenBao.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

import orjson

from mssm.core.errors import APIError, BadRequest
from mssm.core.fields import BOOL, STRING, Field
from mssm.core.request import READ, UPDATE, Request
from mssm.engines.base import Route
from mssm.engines.transit.keys import KEY_NAME_PATTERN, KeyPolicy, rfc3339
from mssm.engines.transit.restore import BACKUP_FORMAT, parse_backup

if TYPE_CHECKING:
    from mssm.engines.transit import TransitEngine

logger = logging.getLogger(__name__)


class BackupPaths:
    def __init__(self, engine: TransitEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def routes(self) -> list[Route]:
        return [
            Route(f"backup/(?P<name>{KEY_NAME_PATTERN})", {READ: self.backup}),
            Route(
                f"restore(?:/(?P<name>{KEY_NAME_PATTERN}))?",
                {UPDATE: self.restore},
                {"backup": Field(STRING), "force": Field(BOOL)},
            ),
        ]

    async def backup(self, req: Request, data: dict) -> dict:
        name = data["name"]
        async with self.store.lock(name):
            policy = await self.store.get(name)
            # Vault returns 500 for these three errors, and clients may rely on it.
            if policy is None:
                raise APIError(f"key {name!r} not found", status=500)
            if not policy.exportable:
                raise APIError("exporting is disallowed on the key", status=500)
            if not policy.allow_plaintext_backup:
                raise APIError("plaintext backup is disallowed on the key", status=500)
            updated = policy.copy()
            updated.backup_info = self._info(updated)
            await self.store.save(updated)
        logger.info("plaintext backup taken of key %s", name)
        blob = orjson.dumps({"format": BACKUP_FORMAT, "key": updated.to_json()})
        return {"backup": base64.b64encode(blob).decode()}

    async def restore(self, req: Request, data: dict) -> None:
        if not data.get("backup"):
            raise BadRequest("missing backup: the body needs the blob from backup/NAME")
        policy = await parse_backup(data["backup"], data.get("name"), self.engine.now())
        async with self.store.lock(policy.name):
            if await self.store.get(policy.name) is not None and not data.get("force"):
                raise APIError(
                    f"key {policy.name!r} already exists; set force=true to replace it",
                    status=500,
                )
            policy.restore_info = self._info(policy)
            await self.store.save(policy)
        logger.info("restored key %s from a backup", policy.name)
        self.engine.scheduler.wake()

    def _info(self, policy: KeyPolicy) -> dict[str, Any]:
        return {"time": rfc3339(self.engine.now()), "version": policy.latest_version}
