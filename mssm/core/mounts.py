"""The mount table: which engine serves which path prefix."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from mssm.core.errors import BadRequest

MOUNT_TABLE_PATH = "core/mounts"
# Paths that belong to the core; nothing may be mounted at or under them.
PROTECTED_PREFIXES = ("sys/", "auth/", "identity/", "audit/", "cubbyhole/")


@dataclass
class MountEntry:
    path: str
    type: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    accessor: str = ""
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    local: bool = False
    seal_wrap: bool = False
    created_time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.accessor:
            self.accessor = f"{self.type}_{secrets.token_hex(4)}"

    @property
    def default_lease_ttl(self) -> int:
        return int(self.config.get("default_lease_ttl", 0))

    @property
    def max_lease_ttl(self) -> int:
        return int(self.config.get("max_lease_ttl", 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_mount_path(path: str) -> str:
    path = path.strip("/")
    if not path:
        raise BadRequest("mount path must not be empty")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise BadRequest(f"invalid mount path {path!r}: empty or dot segment")
    return path + "/"


class MountTable:
    def __init__(self) -> None:
        self.entries: dict[str, MountEntry] = {}

    def match(self, path: str) -> MountEntry | None:
        """Return the mount with the longest path that is a prefix of path."""
        candidate = path if path.endswith("/") else path + "/"
        while candidate:
            entry = self.entries.get(candidate)
            if entry is not None:
                return entry
            cut = candidate.rstrip("/").rfind("/")
            candidate = candidate[: cut + 1] if cut >= 0 else ""
        return None

    def check_new_path(self, path: str) -> None:
        """Reject a path that equals, contains or sits under an existing mount."""
        for prefix in PROTECTED_PREFIXES:
            if path.startswith(prefix) or prefix.startswith(path):
                raise BadRequest(f"cannot mount at {path!r}: {prefix} is reserved")
        # Both directions, segment by segment: "team/" and "team/app/" overlap,
        # "team/" and "teamwork/" do not. Vault answers an overlap with 400.
        for existing in self.entries:
            if path.startswith(existing) or existing.startswith(path):
                raise BadRequest(f"path is already in use at {existing}")

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.entries.values()]

    @classmethod
    def from_json(cls, items: list[dict[str, Any]]) -> MountTable:
        table = cls()
        for item in items:
            entry = MountEntry(**item)
            table.entries[entry.path] = entry
        return table
