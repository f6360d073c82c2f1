"""sys/mounts: enable, disable, read and tune secrets engine mounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssm import __version__
from mssm.core.durations import parse_duration
from mssm.core.errors import BadRequest, PermissionDenied
from mssm.core.fields import ANY, BOOL, MAP, STRING, Field
from mssm.core.mounts import MountEntry, normalize_mount_path
from mssm.core.request import DELETE, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.sys.access import require_canonical_access

if TYPE_CHECKING:
    from mssm.core.core import Core

MOUNT_FIELDS = {
    "type": Field(STRING),
    "description": Field(STRING),
    "config": Field(MAP),
    "options": Field(MAP),
    "local": Field(BOOL),
    "seal_wrap": Field(BOOL),
    "external_entropy_access": Field(BOOL),
    "plugin_name": Field(STRING),
    "plugin_version": Field(STRING),
}
TUNE_FIELDS = {
    "default_lease_ttl": Field(ANY),
    "max_lease_ttl": Field(ANY),
    "description": Field(STRING),
    "options": Field(MAP),
    "audit_non_hmac_request_keys": Field(ANY),
    "audit_non_hmac_response_keys": Field(ANY),
    "listing_visibility": Field(STRING),
    "passthrough_request_headers": Field(ANY),
    "allowed_response_headers": Field(ANY),
}


class MountsSection:
    """The mount table as an API."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        return [
            Route("mounts", {READ: self.list_mounts}),
            Route(
                "mounts/(?P<path>.+?)/tune",
                {READ: self.read_tune, UPDATE: self.write_tune},
                TUNE_FIELDS,
            ),
            Route(
                "mounts/(?P<path>.+)",
                {
                    READ: self.read_mount,
                    UPDATE: self.enable_mount,
                    DELETE: self.disable_mount,
                },
                MOUNT_FIELDS,
            ),
            # Any token with some access inside a mount may read its
            # description (the CLI's preflight), so the section checks the
            # token itself instead of an ACL rule on this path.
            Route(
                "internal/ui/mounts/(?P<path>.+)",
                {READ: self.ui_mount},
                unauthenticated=True,
            ),
        ]

    # -- mounts ------------------------------------------------------------

    def _mount_info(self, entry: MountEntry) -> dict[str, Any]:
        info = self._base_info(entry)
        # Vault reports the status of plugins in its catalog; the system mount
        # and the old "generic" alias are not in it.
        if entry.path != "sys/" and entry.type != "generic":
            info["deprecation_status"] = "supported"
        return info

    def _base_info(self, entry: MountEntry) -> dict[str, Any]:
        return {
            "accessor": entry.accessor,
            "config": {
                "default_lease_ttl": entry.default_lease_ttl,
                "force_no_cache": False,
                "max_lease_ttl": entry.max_lease_ttl,
            },
            "description": entry.description,
            "external_entropy_access": False,
            "local": entry.local,
            "options": entry.options if entry.path != "sys/" else None,
            "plugin_version": "",
            "running_plugin_version": f"v{__version__}+builtin.mssm",
            "running_sha256": "",
            "seal_wrap": entry.seal_wrap,
            "type": entry.type,
            "uuid": entry.uuid,
        }

    async def list_mounts(self, req: Request, data: dict) -> Response:
        mounts = {
            path: self._mount_info(e) for path, e in self.core.mounts.entries.items()
        }
        system = MountEntry(
            path="sys/", type="system", uuid="system", accessor="system"
        )
        system.description = "system endpoints used for control, policy and debugging"
        mounts["sys/"] = self._mount_info(system)
        return Response(data=mounts, top_level=True)

    def _entry(self, path: str) -> MountEntry:
        entry = self.core.mounts.entries.get(path)
        if entry is None:
            raise BadRequest(f"no mount at {path!r}")
        return entry

    async def _authorized_path(self, req: Request, raw_path: str) -> str:
        """Return the mount path raw_path names, once the ACL allows it too.

        "sys/mounts//kv" and "sys/mounts/kv/" act on the mount kv/, so a
        rule that denies sys/mounts/kv must stop them as well.
        """
        path = normalize_mount_path(raw_path)
        start = len("sys/mounts/")
        rest = req.path[start + len(raw_path) :]
        canonical = req.path[:start] + path.rstrip("/") + rest
        await require_canonical_access(self.core, req, canonical)
        return path

    async def read_mount(self, req: Request, data: dict) -> Response:
        entry = self._entry(await self._authorized_path(req, data["path"]))
        return Response(data=self._mount_info(entry), top_level=True)

    async def enable_mount(self, req: Request, data: dict) -> None:
        path = await self._authorized_path(req, data["path"])
        engine_type = data.get("type") or data.get("plugin_name")
        if not engine_type:
            raise BadRequest(
                "field 'type' is required: the secrets engine type, e.g. kv"
            )
        options = {k: str(v) for k, v in (data.get("options") or {}).items()}
        if engine_type == "kv-v2":
            # Vault's shorthand for a kv mount with version 2.
            engine_type = "kv"
            options["version"] = "2"
        config = _tune_values(
            data.get("config") or {}, {}, self.core.config.max_lease_ttl
        )
        entry = MountEntry(
            path=path,
            type=engine_type,
            description=data.get("description", ""),
            config=config,
            options=options,
            local=data.get("local", False),
            seal_wrap=data.get("seal_wrap", False),
        )
        await self.core.mount(entry)

    async def disable_mount(self, req: Request, data: dict) -> None:
        path = await self._authorized_path(req, data["path"])
        if path in ("sys/", "cubbyhole/", "identity/") or path.startswith("auth/"):
            raise BadRequest(f"cannot unmount {path!r}: it is a protected mount")
        await self.core.unmount(path)

    async def read_tune(self, req: Request, data: dict) -> Response:
        entry = self._entry(await self._authorized_path(req, data["path"]))
        tune = {
            "default_lease_ttl": entry.default_lease_ttl
            or self.core.config.default_lease_ttl,
            "max_lease_ttl": entry.max_lease_ttl or self.core.config.max_lease_ttl,
            "force_no_cache": False,
            "description": entry.description,
        }
        if entry.options:
            tune["options"] = entry.options
        return Response(data=tune, top_level=True)

    async def write_tune(self, req: Request, data: dict) -> None:
        """Validate every field first, so that a rejected tune changes nothing."""
        entry = self._entry(await self._authorized_path(req, data["path"]))
        config = _tune_values(data, entry.config, self.core.config.max_lease_ttl)
        options = dict(entry.options)
        if data.get("options"):
            options.update({k: str(v) for k, v in data["options"].items()})
            _check_kv_version(entry, options)
        entry.config = config
        entry.options = options
        if "description" in data:
            entry.description = data["description"]
        await self.core.save_mounts()

    async def ui_mount(self, req: Request, data: dict) -> Response:
        """Describe the mount that serves a path, to a token with access to
        some path in it; an unknown mount is a 403 so that mount names stay
        hidden."""
        token = await self.core.tokens.lookup(req.client_token or "", self.core.clock())
        if token is None:
            raise PermissionDenied()
        entry = self.core.mounts.match(data["path"])
        if entry is None or not self._has_mount_access(token.policies, entry.path):
            raise PermissionDenied()
        info = self._mount_info(entry) | {"path": entry.path}
        return Response(data=info)

    def _has_mount_access(self, policies: list[str], mount_path: str) -> bool:
        if "root" in policies:
            return True
        for name in policies:
            policy = self.core.policies.get(name)
            for rule in policy.rules if policy is not None else []:
                granted = set(rule.capabilities) - {"deny"}
                if granted and pattern_reaches_mount(rule.pattern, mount_path):
                    return True
        return False


def pattern_reaches_mount(pattern: str, mount_path: str) -> bool:
    """Whether an ACL path pattern can match some path under mount_path.

    A "+" segment matches any one segment; a trailing "*" matches any rest,
    so a glob reaches the mount when either prefix contains the other.
    """
    glob = pattern.endswith("*")
    literal = pattern[:-1] if glob else pattern
    pattern_parts = literal.split("/")
    mount_parts = mount_path.rstrip("/").split("/")
    for index, mount_part in enumerate(mount_parts):
        if index >= len(pattern_parts):
            return False
        part = pattern_parts[index]
        last = index == len(pattern_parts) - 1
        if part == "+":
            continue
        if glob and last:
            return mount_part.startswith(part)
        if part != mount_part:
            return False
    return len(pattern_parts) > len(mount_parts) or glob


def _check_kv_version(entry: MountEntry, options: dict[str, str]) -> None:
    if entry.type != "kv":
        return
    current = entry.options.get("version", "1")
    requested = options.get("version", current)
    if requested not in ("1", "2"):
        raise BadRequest(
            f"invalid kv version {requested!r} in options: expected 1 or 2"
        )
    if requested < current:
        raise BadRequest(f"cannot downgrade mount from version {current}")
    if requested > current:
        # TODO: migrate the version 1 keys into the version 2 layout, as Vault
        # does, instead of rejecting the upgrade.
        raise BadRequest(
            "upgrading a kv mount from version 1 to 2 is not supported: enable a "
            "new mount with options.version 2 and copy the keys"
        )


def _tune_values(data: dict, current: dict, system_max: int) -> dict:
    """Apply default_lease_ttl and max_lease_ttl, checking the new default
    against the new maximum (not the old one)."""
    result = dict(current)
    for name in ("default_lease_ttl", "max_lease_ttl"):
        if name in data and data[name] is not None:
            value = data[name]
            result[name] = 0 if value in ("system", "") else parse_duration(value, name)
    default = result.get("default_lease_ttl", 0)
    maximum = result.get("max_lease_ttl", 0) or system_max
    if default and default > maximum:
        raise BadRequest(
            f"default_lease_ttl ({default}s) must not exceed max_lease_ttl ({maximum}s)"
        )
    return result
