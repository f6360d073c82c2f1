"""sys/remount: move a secrets engine mount to another path.

The move runs in the background and is reported through
sys/remount/status/:migration_id. As Vault documents, the mount's leases
are revoked first, because their ids name the old path; the engine's data
stays where it is (storage is keyed by the mount's uuid), so configuration
and roles move with the mount.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mssm.core.errors import APIError, BadRequest, NotFound
from mssm.core.fields import STRING, Field
from mssm.core.mounts import MountEntry, normalize_mount_path
from mssm.core.request import READ, UPDATE, Request, Response
from mssm.engines.base import Route

if TYPE_CHECKING:
    from mssm.core.core import Core

logger = logging.getLogger(__name__)

IN_PROGRESS = "in-progress"
SUCCESS = "success"
FAILURE = "failure"
# Mounts the core serves itself; they can be neither source nor target.
PROTECTED_MOUNTS = ("sys/", "cubbyhole/", "identity/", "auth/", "audit/")
QUEUED_WARNING = (
    "Mount move has been queued. Progress will be reported in the server's "
    "log, tagged with the returned migration_id"
)


@dataclass
class Migration:
    migration_id: str
    source_mount: str
    target_mount: str
    status: str = IN_PROGRESS


class RemountSection:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.migrations: dict[str, Migration] = {}
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list[Route]:
        return [
            Route(
                "remount",
                {UPDATE: self.remount},
                {"from": Field(STRING), "to": Field(STRING)},
            ),
            Route("remount/status/(?P<migration_id>.+)", {READ: self.status}),
        ]

    async def teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def remount(self, req: Request, data: dict) -> Response:
        source, target = self._check_paths(data)
        migration = Migration(str(uuid.uuid4()), source, target)
        self.migrations[migration.migration_id] = migration
        task = asyncio.create_task(self._move(migration))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Response(
            data={"migration_id": migration.migration_id},
            warnings=[QUEUED_WARNING],
            top_level=True,
        )

    async def status(self, req: Request, data: dict) -> Response:
        migration = self.migrations.get(data["migration_id"])
        if migration is None:
            raise NotFound()
        info = {
            "source_mount": migration.source_mount,
            "target_mount": migration.target_mount,
            "status": migration.status,
        }
        return Response(
            data={"migration_id": migration.migration_id, "migration_info": info}
        )

    def _check_paths(self, data: dict) -> tuple[str, str]:
        if not data.get("from") or not data.get("to"):
            raise BadRequest("both 'from' and 'to' path must be specified as a string")
        source = normalize_mount_path(data["from"])
        target = normalize_mount_path(data["to"])
        for path in (source, target):
            if path.startswith(PROTECTED_MOUNTS):
                raise BadRequest(f"cannot remount {path!r}: it is a protected path")
        if source not in self.core.mounts.entries:
            raise BadRequest(f"no matching mount at {source!r}")
        # check_new_path rejects a target that overlaps any mount, the source
        # included, so "secret/" cannot move to "secret/x/".
        try:
            self.core.mounts.check_new_path(target)
        except APIError as exc:
            raise BadRequest(*exc.messages) from None
        return source, target

    async def _move(self, migration: Migration) -> None:
        source, target = migration.source_mount, migration.target_mount
        logger.info(
            "remount %s: moving %s to %s", migration.migration_id, source, target
        )
        try:
            await self.core.leases.revoke_mount(source)
            await self._rename(source, target)
        except Exception as exc:
            migration.status = FAILURE
            logger.error(
                "remount %s from %s to %s failed: %s",
                migration.migration_id,
                source,
                target,
                exc,
            )
            return
        migration.status = SUCCESS
        logger.info("remount %s finished", migration.migration_id)

    async def _rename(self, source: str, target: str) -> None:
        core = self.core
        entry: MountEntry = core.mounts.entries[source]
        engine = core.engines.pop(source, None)
        if engine is not None:
            await engine.teardown()
        del core.mounts.entries[source]
        entry.path = target
        core.mounts.entries[target] = entry
        await core.save_mounts()
        core.engines[target] = await core._start_engine(entry)
