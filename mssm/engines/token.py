"""The token store's API at auth/token/: create, look up, renew, revoke,
accessors and roles, on Vault's paths and with Vault's fields."""

from __future__ import annotations

from typing import Any

from mssm.core.errors import APIError, BadRequest, NotFound
from mssm.core.fields import BOOL, DURATION, INT, STRING, STRING_LIST, STRING_MAP, Field
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.core.timefmt import rfc3339
from mssm.core.token_rules import (
    CreateRequest,
    TokenLimits,
    TokenRole,
    create_terms,
)
from mssm.core.tokens import TokenEntry
from mssm.engines.base import Engine, EngineContext, Route

# role_name is not a body field: a role is chosen only by the path
# auth/token/create/:role_name, so that ACL rules on that path apply.
CREATE_FIELDS = {
    "id": Field(STRING),
    "policies": Field(STRING_LIST),
    "meta": Field(STRING_MAP),
    "no_parent": Field(BOOL),
    "no_default_policy": Field(BOOL),
    "renewable": Field(BOOL),
    "ttl": Field(DURATION),
    "lease": Field(DURATION),
    "type": Field(STRING),
    "explicit_max_ttl": Field(DURATION),
    "display_name": Field(STRING),
    "num_uses": Field(INT),
    "period": Field(DURATION),
    "entity_alias": Field(STRING),
}
ROLE_FIELDS = {
    "allowed_policies": Field(STRING_LIST),
    "allowed_policies_glob": Field(STRING_LIST),
    "disallowed_policies": Field(STRING_LIST),
    "disallowed_policies_glob": Field(STRING_LIST),
    "orphan": Field(BOOL),
    "renewable": Field(BOOL),
    "path_suffix": Field(STRING),
    "token_ttl": Field(DURATION),
    "token_max_ttl": Field(DURATION),
    "token_period": Field(DURATION),
    "period": Field(DURATION),
    "token_explicit_max_ttl": Field(DURATION),
    "explicit_max_ttl": Field(DURATION),
    "token_no_default_policy": Field(BOOL),
    "token_type": Field(STRING),
    "allowed_entity_aliases": Field(STRING_LIST),
}
# Older role field names that Vault still accepts, and their current names.
ROLE_ALIASES = {"period": "token_period", "explicit_max_ttl": "token_explicit_max_ttl"}
TOKEN_FIELD = {"token": Field(STRING)}
ACCESSOR_FIELD = {"accessor": Field(STRING)}
INCREMENT_FIELD = {"increment": Field(DURATION)}
ROOT_PATH = "auth/token/root"


class TokenEngine(Engine):
    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.store = ctx.core.tokens
        self.routes = [
            Route("create-orphan", {UPDATE: self.create_orphan}, CREATE_FIELDS),
            Route("create/(?P<role_name>[^/]+)", {UPDATE: self.create}, CREATE_FIELDS),
            Route("create", {UPDATE: self.create}, CREATE_FIELDS),
            Route("lookup", {READ: self.lookup, UPDATE: self.lookup}, TOKEN_FIELD),
            Route(
                "lookup-self",
                {READ: self.lookup_self, UPDATE: self.lookup_self},
                effect_free=frozenset({READ, UPDATE}),
            ),
            Route("lookup-accessor", {UPDATE: self.lookup_accessor}, ACCESSOR_FIELD),
            Route("renew", {UPDATE: self.renew}, TOKEN_FIELD | INCREMENT_FIELD),
            Route("renew-self", {UPDATE: self.renew_self}, INCREMENT_FIELD),
            Route(
                "renew-accessor",
                {UPDATE: self.renew_accessor},
                ACCESSOR_FIELD | INCREMENT_FIELD,
            ),
            Route("revoke", {UPDATE: self.revoke}, TOKEN_FIELD),
            Route("revoke-self", {UPDATE: self.revoke_self}),
            Route("revoke-accessor", {UPDATE: self.revoke_accessor}, ACCESSOR_FIELD),
            Route("revoke-orphan", {UPDATE: self.revoke_orphan}, TOKEN_FIELD),
            Route("accessors/?", {LIST: self.list_accessors}),
            Route("roles/?", {LIST: self.list_roles}),
            Route(
                "roles/(?P<role_name>[^/]+)",
                {
                    READ: self.read_role,
                    CREATE: self.write_role,
                    UPDATE: self.write_role,
                    DELETE: self.delete_role,
                },
                ROLE_FIELDS,
                existence=self.role_exists,
            ),
        ]

    async def setup(self) -> None:
        core = self.ctx.core
        self.store.start(
            clock=lambda: core.clock(),
            revoke_leases=core.leases.revoke_by_token,
            system_limits=TokenLimits(
                core.config.default_lease_ttl, core.config.max_lease_ttl
            ),
        )

    async def teardown(self) -> None:
        await self.store.stop()

    # -- create ----------------------------------------------------------------

    async def create_orphan(self, req: Request, data: dict) -> Response:
        return await self._create(req, data, orphan_endpoint=True)

    async def create(self, req: Request, data: dict) -> Response:
        return await self._create(req, data, orphan_endpoint=False)

    async def _create(
        self, req: Request, data: dict, orphan_endpoint: bool
    ) -> Response:
        if data.get("id"):
            raise BadRequest(
                "field 'id' is not supported: MSSM generates every token id "
                "(142 random bits)"
            )
        role = self._role_for_create(req.params.get("role_name", ""))
        request = _create_request(data, orphan_endpoint)
        parent: TokenEntry = req.token
        sudo = parent.is_root or await self._has_sudo(req)
        terms = create_terms(request, parent.policies, sudo, role, self.store.limits())
        token_id, entry = await self.store.create(
            parent, terms, request, req.path, role.name if role else ""
        )
        warnings = terms.warnings + self._missing_policy_warnings(entry.policies)
        return Response(auth=auth_block(token_id, entry), warnings=warnings)

    def _role_for_create(self, name: str) -> TokenRole | None:
        if not name:
            return None
        role = self.store.role(name)
        if role is None:
            raise BadRequest(f"unknown role {name}")
        return role

    async def _has_sudo(self, req: Request) -> bool:
        decision = await self.ctx.core.policies.check(
            req.token.policies, req.path, req.operation
        )
        return decision.sudo

    def _missing_policy_warnings(self, policies: list[str]) -> list[str]:
        policy_store = self.ctx.core.policies
        return [
            f'Policy "{name}" does not exist'
            for name in policies
            if not policy_store.exists(name)
        ]

    # -- lookup ----------------------------------------------------------------

    async def lookup(self, req: Request, data: dict) -> Response:
        token_id = data.get("token", "")
        if not token_id:
            raise BadRequest("missing required field 'token'")
        entry = await self.store.lookup(token_id, self.ctx.core.clock())
        if entry is None:
            raise APIError("bad token", status=403)
        return Response(data=self._lookup_data(entry, token_id))

    async def lookup_self(self, req: Request, data: dict) -> Response:
        return Response(data=self._lookup_data(req.token, req.client_token or ""))

    async def lookup_accessor(self, req: Request, data: dict) -> Response:
        entry = await self._entry_by_accessor(data)
        return Response(data=self._lookup_data(entry, ""))

    async def _entry_by_accessor(self, data: dict) -> TokenEntry:
        accessor = data.get("accessor", "")
        if not accessor:
            raise BadRequest("missing required field 'accessor'")
        entry = await self.store.lookup_accessor(accessor, self.ctx.core.clock())
        if entry is None:
            raise BadRequest("invalid accessor")
        return entry

    def _lookup_data(self, entry: TokenEntry, token_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accessor": entry.accessor,
            "creation_time": int(entry.creation_time),
            "creation_ttl": entry.creation_ttl,
            "display_name": entry.display_name,
            "entity_id": "",
            "expire_time": rfc3339(entry.expire_time) if entry.expire_time else None,
            "explicit_max_ttl": entry.explicit_max_ttl,
            "id": token_id,
            "issue_time": rfc3339(entry.creation_time),
            "meta": entry.meta or None,
            "num_uses": max(entry.num_uses, 0),
            "orphan": entry.orphan,
            "path": entry.path,
            "policies": entry.policies,
            "renewable": entry.renewable,
            "ttl": entry.remaining(self.ctx.core.clock()),
            "type": entry.type,
        }
        if entry.path == ROOT_PATH:
            # Vault reports no issue time or renewability for the root
            # tokens of init and generate-root.
            del body["issue_time"], body["renewable"]
        if entry.period:
            body["period"] = entry.period
        if entry.role:
            body["role"] = entry.role
        if entry.last_renewal_time:
            body["last_renewal"] = rfc3339(entry.last_renewal_time)
            body["last_renewal_time"] = int(entry.last_renewal_time)
        return body

    # -- renew -----------------------------------------------------------------

    async def renew(self, req: Request, data: dict) -> Response:
        token_id = data.get("token", "")
        if not token_id:
            raise BadRequest("missing required field 'token'")
        entry = await self.store.lookup(token_id, self.ctx.core.clock())
        if entry is None:
            raise BadRequest("token not found")
        return await self._renew(entry, token_id, data.get("increment", 0))

    async def renew_self(self, req: Request, data: dict) -> Response:
        return await self._renew(
            req.token, req.client_token or "", data.get("increment", 0)
        )

    async def renew_accessor(self, req: Request, data: dict) -> Response:
        entry = await self._entry_by_accessor(data)
        return await self._renew(entry, "", data.get("increment", 0))

    async def _renew(
        self, entry: TokenEntry, token_id: str, increment: int
    ) -> Response:
        terms = await self.store.renew(entry, increment)
        return Response(auth=auth_block(token_id, entry), warnings=terms.warnings)

    # -- revoke ----------------------------------------------------------------

    async def revoke(self, req: Request, data: dict) -> None:
        token_id = data.get("token", "")
        if not token_id:
            raise BadRequest("missing required field 'token'")
        entry = await self.store.lookup(token_id, self.ctx.core.clock())
        if entry is not None:
            await self.store.revoke_tree(entry.id_hash, "revoked by request")

    async def revoke_self(self, req: Request, data: dict) -> None:
        await self.store.revoke_tree(req.token.id_hash, "revoked by itself")

    async def revoke_accessor(self, req: Request, data: dict) -> Response | None:
        accessor = data.get("accessor", "")
        if not accessor:
            raise BadRequest("missing required field 'accessor'")
        entry = await self.store.lookup_accessor(accessor, self.ctx.core.clock())
        if entry is None:
            return Response(warnings=["No token found with this accessor"])
        await self.store.revoke_tree(entry.id_hash, "revoked by accessor")
        return None

    async def revoke_orphan(self, req: Request, data: dict) -> None:
        token_id = data.get("token", "")
        if not token_id:
            raise BadRequest("missing required field 'token'")
        entry = await self.store.lookup(token_id, self.ctx.core.clock())
        if entry is not None:
            await self.store.revoke_orphan(entry.id_hash, "revoked as orphan parent")

    async def list_accessors(self, req: Request, data: dict) -> Response:
        return Response(data={"keys": await self.store.accessors()})

    # -- roles -----------------------------------------------------------------

    async def role_exists(self, req: Request) -> bool:
        return self.store.role(req.params.get("role_name", "")) is not None

    async def list_roles(self, req: Request, data: dict) -> Response:
        names = self.store.role_names()
        if not names:
            raise NotFound()
        return Response(data={"keys": names})

    async def read_role(self, req: Request, data: dict) -> Response:
        role = self.store.role(data["role_name"])
        if role is None:
            raise NotFound()
        return Response(data=role_data(role))

    async def write_role(self, req: Request, data: dict) -> None:
        name = data["role_name"]
        current = self.store.role(name) or TokenRole(name=name)
        values = current.to_dict()
        for field_name, value in data.items():
            if field_name in ROLE_FIELDS:
                values[ROLE_ALIASES.get(field_name, field_name)] = value
        role = TokenRole.from_dict(values)
        _validate_role(role)
        await self.store.put_role(role)

    async def delete_role(self, req: Request, data: dict) -> None:
        await self.store.delete_role(data["role_name"])


def _create_request(data: dict, orphan_endpoint: bool) -> CreateRequest:
    policies = data.get("policies")
    return CreateRequest(
        policies=list(policies) if policies is not None else None,
        meta=data.get("meta", {}),
        display_name=data.get("display_name", ""),
        ttl=data.get("ttl") or data.get("lease", 0),
        explicit_max_ttl=data.get("explicit_max_ttl", 0),
        period=data.get("period", 0),
        num_uses=data.get("num_uses", 0),
        renewable=data.get("renewable", True),
        no_parent=data.get("no_parent", False),
        no_default_policy=data.get("no_default_policy", False),
        orphan_endpoint=orphan_endpoint,
        token_type=data.get("type", ""),
    )


def _validate_role(role: TokenRole) -> None:
    if role.token_type not in ("default-service", "service", "default"):
        raise BadRequest(
            f"invalid token_type {role.token_type!r}: MSSM issues service tokens "
            "only (service, default or default-service)"
        )
    if role.token_max_ttl and role.token_ttl > role.token_max_ttl:
        raise BadRequest(
            f"token_ttl ({role.token_ttl}s) must not exceed token_max_ttl "
            f"({role.token_max_ttl}s)"
        )


def auth_block(token_id: str, entry: TokenEntry) -> dict[str, Any]:
    """Build the `auth` object of a create or renew response, as Vault sends it."""
    return {
        "client_token": token_id,
        "accessor": entry.accessor,
        "policies": entry.policies,
        "token_policies": entry.policies,
        "metadata": entry.meta or None,
        "lease_duration": entry.ttl,
        "renewable": entry.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.orphan,
        "mfa_requirement": None,
        "num_uses": max(entry.num_uses, 0),
    }


def role_data(role: TokenRole) -> dict[str, Any]:
    return {
        "allowed_entity_aliases": role.allowed_entity_aliases,
        "allowed_policies": role.allowed_policies,
        "allowed_policies_glob": role.allowed_policies_glob,
        "disallowed_policies": role.disallowed_policies,
        "disallowed_policies_glob": role.disallowed_policies_glob,
        "explicit_max_ttl": role.token_explicit_max_ttl,
        "name": role.name,
        "orphan": role.orphan,
        "path_suffix": role.path_suffix,
        "period": role.token_period,
        "renewable": role.renewable,
        "token_explicit_max_ttl": role.token_explicit_max_ttl,
        "token_max_ttl": role.token_max_ttl,
        "token_no_default_policy": role.token_no_default_policy,
        "token_period": role.token_period,
        "token_ttl": role.token_ttl,
        "token_type": role.token_type,
    }


__all__ = ["TokenEngine", "auth_block"]
