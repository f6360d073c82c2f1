"""The key/value secrets engine, versions 1 (plain) and 2 (versioned)."""

from __future__ import annotations

from mssm.engines.base import Engine, EngineContext
from mssm.engines.kv.v1 import KVv1Engine
from mssm.engines.kv.v2 import KVv2Engine


def KVEngine(ctx: EngineContext) -> Engine:  # noqa: N802 - used as a class
    """Build the engine version that the mount's `version` option selects."""
    if ctx.mount.type == "kv" and ctx.mount.options.get("version") == "2":
        return KVv2Engine(ctx)
    return KVv1Engine(ctx)


__all__ = ["KVEngine", "KVv1Engine", "KVv2Engine"]
