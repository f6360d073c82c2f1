"""KV version 2: versioned secrets with check-and-set, soft delete and
metadata, on Vault's paths (data/, metadata/, delete/, undelete/, destroy/,
config)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from mssm.core.durations import format_go_duration, parse_signed_duration
from mssm.core.errors import APIError, BadRequest, NotFound
from mssm.core.fields import ANY, BOOL, INT, MAP, Field
from mssm.core.request import (
    CREATE,
    DELETE,
    PATCH,
    READ,
    UPDATE,
    Request,
    Response,
)
from mssm.core.request import LIST as LIST_OP
from mssm.engines.base import Engine, EngineContext, Route
from mssm.engines.kv.metadata import (
    DEFAULT_MAX_VERSIONS,
    KeyMetadata,
    VersionInfo,
    validate_custom_metadata,
)

V1_PATH_WARNING = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the "
    "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv "
    "{verb}' for this operation."
)
ROOT_WARNING = "Non-listing operations on the root of a K/V v2 mount are not supported."
_VERBS = {READ: "get", CREATE: "put", UPDATE: "put", DELETE: "delete", LIST_OP: "list"}
_VERBS[PATCH] = "patch"

DATA_FIELDS = {"data": Field(MAP), "options": Field(MAP)}
METADATA_FIELDS = {
    "max_versions": Field(INT),
    "cas_required": Field(BOOL),
    "delete_version_after": Field(ANY),
    "custom_metadata": Field(ANY),
}
VERSIONS_FIELDS = {"versions": Field(ANY)}
LOCK_STRIPES = 64

# The operations that read and change nothing.
READS = frozenset({READ, LIST_OP})


class KVv2Engine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        # A fixed set of locks, picked by key, serialises the read-modify-write
        # of one key's metadata without keeping a lock for every key ever seen.
        # NOTE: they serialise writers in this process only; several worker
        # processes on one storage could both pass the same check-and-set.
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
        key = "(?P<path>.+)"
        self.routes = [
            Route(
                "config",
                {READ: self.read_config, UPDATE: self.write_config},
                {
                    "max_versions": Field(INT),
                    "cas_required": Field(BOOL),
                    "delete_version_after": Field(ANY),
                },
            ),
            Route(
                f"data/{key}",
                {
                    READ: self.read_data,
                    CREATE: self.write_data,
                    UPDATE: self.write_data,
                    PATCH: self.patch_data,
                    DELETE: self.delete_latest,
                },
                DATA_FIELDS | {"version": Field(INT)},
                existence=self.key_exists,
                effect_free=READS,
            ),
            Route(f"delete/{key}", {UPDATE: self.delete_versions}, VERSIONS_FIELDS),
            Route(f"undelete/{key}", {UPDATE: self.undelete_versions}, VERSIONS_FIELDS),
            Route(f"destroy/{key}", {UPDATE: self.destroy_versions}, VERSIONS_FIELDS),
            Route(
                "metadata/?(?P<path>.*)",
                {
                    READ: self.read_metadata,
                    LIST_OP: self.list_keys,
                    CREATE: self.write_metadata,
                    UPDATE: self.write_metadata,
                    PATCH: self.patch_metadata,
                    DELETE: self.delete_metadata,
                },
                METADATA_FIELDS,
                existence=self.key_exists,
                effect_free=READS,
            ),
            Route(
                "subkeys/(?P<path>.+)",
                {READ: self.read_subkeys},
                {
                    "version": Field(INT),
                    "depth": Field(INT),
                },
                effect_free=READS,
            ),
            Route(
                "(?P<path>.*)", {op: self.wrong_path for op in _VERBS}, free_form=True
            ),
        ]

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks[hash(key) % LOCK_STRIPES]

    # -- storage helpers -----------------------------------------------------

    async def load_config(self) -> dict[str, Any]:
        stored = await self.ctx.storage.get_json("config")
        return stored or {
            "max_versions": 0,
            "cas_required": False,
            "delete_version_after": 0,
        }

    async def load_metadata(self, key: str) -> KeyMetadata | None:
        raw = await self.ctx.storage.get_json(f"metadata/{key}")
        return None if raw is None else KeyMetadata.from_dict(raw)

    async def save_metadata(self, key: str, meta: KeyMetadata) -> None:
        meta.updated_time = time.time()
        await self.ctx.storage.put_json(f"metadata/{key}", meta.to_dict())

    def _version_path(self, key: str, version: int) -> str:
        # Hashing the key keeps versions of "a" apart from keys under "a/".
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"versions/{digest}/{version}"

    async def key_exists(self, req: Request) -> bool:
        return await self.load_metadata(req.params.get("path", "")) is not None

    # -- data/ ---------------------------------------------------------------

    async def read_data(self, req: Request, data: dict) -> Response:
        key = data["path"]
        meta = await self.load_metadata(key)
        if meta is None:
            raise NotFound()
        # Version 0 (or less) means the latest, as Vault reads it.
        version = data.get("version") or 0
        if version <= 0:
            version = meta.current_version
        info = meta.versions.get(str(version))
        if info is None:
            raise NotFound()
        body = {"data": None, "metadata": meta.version_metadata(version)}
        if info.destroyed or info.deleted(time.time()):
            error = NotFound()
            error.data = body
            raise error
        stored = await self.ctx.storage.get_json(self._version_path(key, version))
        if stored is None:
            raise NotFound()
        body["data"] = stored
        return Response(data=body)

    async def write_data(self, req: Request, data: dict) -> Response:
        if "data" not in data:
            raise BadRequest("no data provided: the body needs a 'data' object")
        key = data["path"]
        async with self._lock(key):
            return await self._write_version(key, data["data"], data.get("options"))

    async def _write_version(
        self, key: str, value: dict, options: dict | None
    ) -> Response:
        config = await self.load_config()
        meta = await self.load_metadata(key) or KeyMetadata()
        _check_cas(meta, config, options)
        version = meta.current_version + 1
        now = time.time()
        info = VersionInfo(created_time=now)
        delete_after = _effective_delete_after(meta, config)
        if delete_after > 0:
            info.deletion_time = now + delete_after
        await self.ctx.storage.put_json(self._version_path(key, version), value)
        meta.versions[str(version)] = info
        meta.current_version = version
        await self._prune(key, meta, config)
        await self.save_metadata(key, meta)
        return Response(data=meta.version_metadata(version))

    async def _prune(self, key: str, meta: KeyMetadata, config: dict) -> None:
        limit = meta.max_versions or config.get("max_versions") or DEFAULT_MAX_VERSIONS
        # oldest_version stays 0 until a version is pruned, as Vault reports it.
        while len(meta.versions) > limit:
            oldest = min(int(v) for v in meta.versions)
            del meta.versions[str(oldest)]
            await self.ctx.storage.delete(self._version_path(key, oldest))
            meta.oldest_version = min(int(v) for v in meta.versions)

    async def patch_data(self, req: Request, data: dict) -> Response:
        if "data" not in data:
            raise BadRequest("no data provided: the body needs a 'data' object")
        key = data["path"]
        async with self._lock(key):
            meta = await self.load_metadata(key)
            if meta is None or not meta.current_version:
                raise NotFound()
            info = meta.versions.get(str(meta.current_version))
            if info is None or info.destroyed or info.deleted(time.time()):
                raise NotFound()
            path = self._version_path(key, meta.current_version)
            current = await self.ctx.storage.get_json(path) or {}
            merged = merge_patch(current, data["data"])
            return await self._write_version(key, merged, data.get("options"))

    async def delete_latest(self, req: Request, data: dict) -> None:
        key = data["path"]
        async with self._lock(key):
            meta = await self.load_metadata(key)
            if meta is None:
                return
            info = meta.versions.get(str(meta.current_version))
            if info is not None and not info.deleted(time.time()):
                info.deletion_time = time.time()
                await self.save_metadata(key, meta)

    # -- delete/, undelete/, destroy/ ------------------------------------------

    async def delete_versions(self, req: Request, data: dict) -> None:
        await self._change_versions(data, self._soft_delete)

    async def undelete_versions(self, req: Request, data: dict) -> None:
        await self._change_versions(data, self._undelete)

    async def destroy_versions(self, req: Request, data: dict) -> None:
        await self._change_versions(data, self._destroy)

    async def _change_versions(self, data: dict, change: Any) -> None:
        versions = _version_numbers(data.get("versions"))
        key = data["path"]
        async with self._lock(key):
            meta = await self.load_metadata(key)
            if meta is None:
                return
            for version in versions:
                info = meta.versions.get(str(version))
                if info is not None:
                    await change(key, version, info)
            await self.save_metadata(key, meta)

    async def _soft_delete(self, key: str, version: int, info: VersionInfo) -> None:
        if not info.deleted(time.time()) and not info.destroyed:
            info.deletion_time = time.time()

    async def _undelete(self, key: str, version: int, info: VersionInfo) -> None:
        if not info.destroyed:
            info.deletion_time = 0.0

    async def _destroy(self, key: str, version: int, info: VersionInfo) -> None:
        info.destroyed = True
        await self.ctx.storage.delete(self._version_path(key, version))

    # -- metadata/ -----------------------------------------------------------

    async def read_metadata(self, req: Request, data: dict) -> Response:
        key = data.get("path", "")
        if not key:
            raise _with_warning(NotFound(ROOT_WARNING), ROOT_WARNING)
        meta = await self.load_metadata(key)
        if meta is None:
            raise NotFound()
        return Response(data=meta.describe())

    async def list_keys(self, req: Request, data: dict) -> Response:
        keys = await self.ctx.storage.list("metadata/" + data.get("path", ""))
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def write_metadata(self, req: Request, data: dict) -> None:
        await self._update_metadata(data, replace_custom=True)

    async def patch_metadata(self, req: Request, data: dict) -> None:
        await self._update_metadata(data, replace_custom=False)

    async def _update_metadata(self, data: dict, replace_custom: bool) -> None:
        key = data.get("path", "")
        if not key:
            raise _with_warning(NotFound(ROOT_WARNING), ROOT_WARNING)
        settings = _metadata_settings(data)
        async with self._lock(key):
            meta = await self.load_metadata(key)
            if meta is None:
                if not replace_custom:
                    raise NotFound()
                meta = KeyMetadata()
            _apply_metadata(meta, settings, replace_custom)
            await self._prune(key, meta, await self.load_config())
            await self.save_metadata(key, meta)

    async def delete_metadata(self, req: Request, data: dict) -> None:
        key = data.get("path", "")
        if not key:
            raise _with_warning(NotFound(ROOT_WARNING), ROOT_WARNING)
        async with self._lock(key):
            meta = await self.load_metadata(key)
            if meta is None:
                return
            for version in meta.versions:
                await self.ctx.storage.delete(self._version_path(key, int(version)))
            await self.ctx.storage.delete(f"metadata/{key}")

    async def read_subkeys(self, req: Request, data: dict) -> Response:
        response = await self.read_data(req, data)
        assert response.data is not None
        depth = data.get("depth", 0)
        subkeys = _subkeys(response.data["data"], depth, 1)
        return Response(
            data={"subkeys": subkeys, "metadata": response.data["metadata"]}
        )

    # -- config --------------------------------------------------------------

    async def read_config(self, req: Request, data: dict) -> Response:
        config = await self.load_config()
        return Response(
            data={
                "max_versions": config["max_versions"],
                "cas_required": config["cas_required"],
                "delete_version_after": format_go_duration(
                    config["delete_version_after"]
                ),
            }
        )

    async def write_config(self, req: Request, data: dict) -> None:
        config = await self.load_config()
        if "max_versions" in data:
            config["max_versions"] = _max_versions(data["max_versions"])
        if "cas_required" in data:
            config["cas_required"] = data["cas_required"]
        if "delete_version_after" in data:
            seconds = parse_signed_duration(
                data["delete_version_after"], "delete_version_after"
            )
            # At the engine level a negative value switches the feature off.
            config["delete_version_after"] = max(seconds, 0)
        await self.ctx.storage.put_json("config", config)

    async def wrong_path(self, req: Request, data: dict) -> None:
        verb = _VERBS.get(req.operation, "get")
        path = req.relative_path.rstrip("/")
        # The bare mount root is a KV v1 style path; only data/ with no key
        # gets the root warning, as Vault words it.
        message = ROOT_WARNING if path == "data" else V1_PATH_WARNING.format(verb=verb)
        raise _with_warning(NotFound(message), message)


def _with_warning(error: APIError, warning: str) -> APIError:
    error.warnings = [warning]
    return error


def _check_cas(meta: KeyMetadata, config: dict, options: dict | None) -> None:
    cas = (options or {}).get("cas")
    required = meta.cas_required or config.get("cas_required", False)
    if cas is None:
        if required:
            raise BadRequest(
                "check-and-set parameter required for this call: set options.cas "
                f"to the current version ({meta.current_version})"
            )
        return
    if isinstance(cas, bool) or not isinstance(cas, int | float) or int(cas) != cas:
        raise BadRequest(f"invalid options.cas {cas!r}: expected an integer version")
    if int(cas) != meta.current_version:
        raise BadRequest(
            "check-and-set parameter did not match the current version: "
            f"cas={int(cas)}, current version={meta.current_version}"
        )


def _effective_delete_after(meta: KeyMetadata, config: dict) -> int:
    candidates = [
        d
        for d in (meta.delete_version_after, config.get("delete_version_after", 0))
        if d > 0
    ]
    return min(candidates) if candidates else 0


def _version_numbers(raw: object) -> list[int]:
    """Accept a JSON array of versions, one number, or a comma-separated
    string ("1,2"), as Vault does."""
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    elif isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not raw:
        raise BadRequest("no versions provided: 'versions' must list version numbers")
    if not isinstance(raw, list):
        raise BadRequest(
            "field 'versions' must be an array of integers or a comma-separated "
            f"string, got {type(raw).__name__}"
        )
    return [_version_number(item) for item in raw]


def _version_number(item: object) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str) and item.strip().isdigit():
        return int(item)
    raise BadRequest(f"invalid version {item!r} in 'versions': expected integers")


def _max_versions(value: int) -> int:
    if value < 0:
        raise BadRequest(
            f"invalid max_versions {value}: must be 0 (the default) or more"
        )
    return value


def _metadata_settings(data: dict) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if "max_versions" in data:
        settings["max_versions"] = _max_versions(data["max_versions"])
    if "cas_required" in data:
        settings["cas_required"] = data["cas_required"]
    if "delete_version_after" in data:
        seconds = parse_signed_duration(
            data["delete_version_after"], "delete_version_after"
        )
        if seconds < 0:
            raise BadRequest(
                f"invalid delete_version_after {data['delete_version_after']!r}: "
                "must not be negative"
            )
        settings["delete_version_after"] = seconds
    if "custom_metadata" in data:
        settings["custom_metadata"] = validate_custom_metadata(data["custom_metadata"])
    return settings


def _apply_metadata(meta: KeyMetadata, settings: dict, replace_custom: bool) -> None:
    for name in ("max_versions", "cas_required", "delete_version_after"):
        if name in settings:
            setattr(meta, name, settings[name])
    if "custom_metadata" in settings:
        if replace_custom:
            meta.custom_metadata = settings["custom_metadata"]
        else:
            merged = merge_patch(
                meta.custom_metadata or {}, settings["custom_metadata"]
            )
            meta.custom_metadata = merged


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): null removes a member."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def _subkeys(value: Any, depth: int, level: int) -> Any:
    if not isinstance(value, dict):
        return None
    if depth and level >= depth:
        return {name: None for name in value}
    return {name: _subkeys(item, depth, level + 1) for name, item in value.items()}


__all__ = ["KVv2Engine"]
