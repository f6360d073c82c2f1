"""Audit broker (seam): every request and response passes through it."""

from __future__ import annotations

from typing import Any

from mssm.core.request import Request, Response


class AuditBroker:
    def __init__(self) -> None:
        self.devices: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.devices)

    async def log_request(self, req: Request) -> None:
        """Record req on every device; raise if no device could record it."""

    async def log_response(
        self, req: Request, resp: Response | None, error: Exception | None
    ) -> None:
        """Record the outcome of req on every device."""

    async def close(self) -> None:
        """Flush and close every device."""
