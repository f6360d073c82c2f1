"""ACL policy evaluation (seam; the full policy store builds on it)."""

from __future__ import annotations

from dataclasses import dataclass

from mssm.core.barrier import StorageView


@dataclass(frozen=True)
class Decision:
    allowed: bool
    sudo: bool = False


ROOT_DECISION = Decision(True, True)
DENIED = Decision(False, False)


class PolicyStore:
    def __init__(self, storage: StorageView) -> None:
        self.storage = storage

    async def load(self) -> None:
        """Read policies from storage after unseal."""

    async def check(self, policies: list[str], path: str, operation: str) -> Decision:
        if "root" in policies:
            return ROOT_DECISION
        return DENIED
