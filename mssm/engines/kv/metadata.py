"""KV v2 metadata: the version list of one key and its settings."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mssm.core.durations import format_go_duration
from mssm.core.errors import BadRequest

MAX_CUSTOM_KEYS = 64
MAX_CUSTOM_KEY_BYTES = 128
MAX_CUSTOM_VALUE_BYTES = 512
DEFAULT_MAX_VERSIONS = 10


@functools.lru_cache(maxsize=8192)
def rfc3339(timestamp: float) -> str:
    """Format a Unix time as Vault does: RFC 3339 with nanoseconds, in UTC."""
    if not timestamp:
        return ""
    moment = datetime.fromtimestamp(timestamp, UTC)
    nanos = int(round((timestamp % 1) * 1e9)) % 1_000_000_000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass
class VersionInfo:
    created_time: float
    deletion_time: float = 0.0
    destroyed: bool = False

    def deleted(self, now: float) -> bool:
        return bool(self.deletion_time) and self.deletion_time <= now


@dataclass
class KeyMetadata:
    created_time: float = field(default_factory=time.time)
    updated_time: float = field(default_factory=time.time)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: int = 0
    custom_metadata: dict[str, str] | None = None
    versions: dict[str, VersionInfo] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> KeyMetadata:
        versions = {k: VersionInfo(**v) for k, v in raw.pop("versions").items()}
        return cls(**raw, versions=versions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def version_metadata(self, version: int) -> dict[str, Any]:
        info = self.versions[str(version)]
        return {
            "created_time": rfc3339(info.created_time),
            "custom_metadata": self.custom_metadata,
            "deletion_time": rfc3339(info.deletion_time),
            "destroyed": info.destroyed,
            "version": version,
        }

    def describe(self) -> dict[str, Any]:
        versions = {
            number: {
                "created_time": rfc3339(info.created_time),
                "deletion_time": rfc3339(info.deletion_time),
                "destroyed": info.destroyed,
            }
            for number, info in self.versions.items()
        }
        return {
            "cas_required": self.cas_required,
            "created_time": rfc3339(self.created_time),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": format_go_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": rfc3339(self.updated_time),
            "versions": versions,
        }


def validate_custom_metadata(value: object) -> dict[str, str]:
    """Check Vault's limits and report every problem at once."""
    if not isinstance(value, dict):
        raise BadRequest("custom_metadata validation failed: must be a JSON object")
    problems = []
    if len(value) > MAX_CUSTOM_KEYS:
        problems.append(
            f"payload must contain at most {MAX_CUSTOM_KEYS} keys, got {len(value)}"
        )
    for key, item in value.items():
        if len(key.encode()) > MAX_CUSTOM_KEY_BYTES:
            problems.append(
                f"length of key {key[:20]!r}... is {len(key.encode())} bytes, "
                f"the maximum is {MAX_CUSTOM_KEY_BYTES}"
            )
        if not isinstance(item, str):
            problems.append(f"value of key {key!r} must be a string")
            continue
        if len(item.encode()) > MAX_CUSTOM_VALUE_BYTES:
            problems.append(
                f"length of value for key {key!r} is {len(item.encode())} bytes, "
                f"the maximum is {MAX_CUSTOM_VALUE_BYTES}"
            )
        if not key or not key.isprintable():
            problems.append(f"key {key!r} must be non-empty printable text")
        if not item:
            problems.append(f"value for key {key!r} must not be empty")
        if not item.isprintable():
            problems.append(f"value for key {key!r} contains non-printable characters")
    if problems:
        raise BadRequest("custom_metadata validation failed: " + "; ".join(problems))
    return value
