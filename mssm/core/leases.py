"""Lease manager (seam): dynamic secrets register their leases here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mssm.core.errors import APIError
from mssm.core.request import Request, Response

if TYPE_CHECKING:
    from mssm.core.core import Core


class LeaseManager:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def start(self) -> None:
        """Load leases after unseal and start expiry."""

    async def stop(self) -> None:
        """Stop background expiry at seal."""

    async def register(self, req: Request, resp: Response) -> None:
        raise APIError("leases are not supported yet", status=500)

    async def revoke_by_token(self, id_hash: str) -> None:
        """Revoke every lease created with the token whose hash is id_hash."""

    async def revoke_mount(self, mount_point: str) -> None:
        """Revoke every lease issued under mount_point."""
