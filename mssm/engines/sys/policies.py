"""sys/policies/acl and the older sys/policy: ACL policy CRUD and listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest, NotFound
from mssm.core.fields import INT, STRING, Field
from mssm.core.policy import BUILTIN_ROOT, Policy, normalize_name
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.core.timefmt import rfc3339
from mssm.engines.base import Route
from mssm.engines.sys.access import require_canonical_access

if TYPE_CHECKING:
    from mssm.core.core import Core

POLICY_FIELDS = {"policy": Field(STRING), "cas": Field(INT)}
LEGACY_FIELDS = {"policy": Field(STRING), "rules": Field(STRING)}


class PoliciesSection:
    def __init__(self, core: Core) -> None:
        self.core = core

    def routes(self) -> list[Route]:
        write = {CREATE: self.write_acl, UPDATE: self.write_acl}
        legacy_write = {CREATE: self.write_legacy, UPDATE: self.write_legacy}
        return [
            Route("policies/acl/?", {LIST: self.list_acl}),
            Route(
                "policies/acl/(?P<name>.+)",
                {READ: self.read_acl, DELETE: self.delete} | write,
                POLICY_FIELDS,
                existence=self.exists,
            ),
            Route("policy/?", {READ: self.list_legacy, LIST: self.list_legacy}),
            Route(
                "policy/(?P<name>.+)",
                {READ: self.read_legacy, DELETE: self.delete} | legacy_write,
                LEGACY_FIELDS,
                existence=self.exists,
            ),
        ]

    async def exists(self, req: Request) -> bool:
        name = req.params.get("name", "").strip().lower()
        return self.core.policies.get(name) is not None

    # -- sys/policies/acl ------------------------------------------------------

    async def list_acl(self, req: Request, data: dict) -> Response:
        return Response(data={"keys": self.core.policies.names()})

    async def read_acl(self, req: Request, data: dict) -> Response:
        name = await self._authorized_name(req, data["name"])
        return Response(data=self._policy_data(name, "policy"))

    async def write_acl(self, req: Request, data: dict) -> None:
        name = await self._authorized_name(req, data["name"])
        text = data.get("policy", "")
        if not text:
            raise BadRequest("'policy' parameter not supplied or empty")
        await self.core.policies.put(name, text, data.get("cas"))

    async def delete(self, req: Request, data: dict) -> None:
        name = await self._authorized_name(req, data["name"])
        await self.core.policies.delete(name)

    async def _authorized_name(self, req: Request, raw_name: str) -> str:
        """Return the stored form of raw_name once the ACL allows it too.

        "ADMIN" and " admin" name the policy "admin", so a rule that denies
        sys/policies/acl/admin must stop them as well.
        """
        name = normalize_name(raw_name)
        prefix = req.path[: len(req.path) - len(raw_name)]
        await require_canonical_access(self.core, req, prefix + name)
        return name

    # -- sys/policy ------------------------------------------------------------

    async def list_legacy(self, req: Request, data: dict) -> Response:
        names = self.core.policies.names()
        return Response(data={"keys": names, "policies": names}, top_level=True)

    async def read_legacy(self, req: Request, data: dict) -> Response:
        name = await self._authorized_name(req, data["name"])
        return Response(data=self._policy_data(name, "rules"), top_level=True)

    async def write_legacy(self, req: Request, data: dict) -> None:
        name = await self._authorized_name(req, data["name"])
        text = data.get("policy") or data.get("rules") or ""
        if not text:
            raise BadRequest("'policy' parameter not supplied or empty")
        await self.core.policies.put(name, text)

    def _policy_data(self, raw_name: str, text_key: str) -> dict[str, Any]:
        name = normalize_name(raw_name)
        if name == BUILTIN_ROOT:
            return _describe(Policy(BUILTIN_ROOT, "", [], version=0), text_key)
        policy = self.core.policies.get(name)
        if policy is None:
            raise NotFound()
        return _describe(policy, text_key) | {"modified": rfc3339(policy.modified)}


def _describe(policy: Policy, text_key: str) -> dict[str, Any]:
    return {
        "allow_slashes_in_identity_templates": False,
        "allow_wildcards_in_identity_templates": False,
        "cas_required": False,
        "name": policy.name,
        text_key: policy.text,
        "version": policy.version,
    }
