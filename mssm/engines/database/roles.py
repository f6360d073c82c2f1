"""database/roles/:name: how dynamic users are created, renewed and revoked."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mssm.core.errors import BadRequest, NotFound
from mssm.core.fields import ANY, DURATION, MAP, STRING, Field
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.database.config import NAME, statement_list

if TYPE_CHECKING:
    from mssm.engines.database import DatabaseEngine

PASSWORD = "password"  # noqa: S105 - the credential type's name
STATEMENT_FIELDS = (
    "creation_statements",
    "revocation_statements",
    "rollback_statements",
    "renew_statements",
)
ROLE_FIELDS = {
    "db_name": Field(STRING),
    "creation_statements": Field(ANY),
    "revocation_statements": Field(ANY),
    "rollback_statements": Field(ANY),
    "renew_statements": Field(ANY),
    "default_ttl": Field(DURATION),
    "max_ttl": Field(DURATION),
    "credential_type": Field(STRING),
    "credential_config": Field(MAP),
}


@dataclass
class Role:
    name: str
    db_name: str
    creation_statements: list[str] = field(default_factory=list)
    revocation_statements: list[str] = field(default_factory=list)
    rollback_statements: list[str] = field(default_factory=list)
    renew_statements: list[str] = field(default_factory=list)
    default_ttl: int = 0
    max_ttl: int = 0
    credential_type: str = PASSWORD

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Role:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def public(self) -> dict[str, Any]:
        answer = asdict(self)
        del answer["name"]
        return answer


class Roles:
    def __init__(self, engine: DatabaseEngine) -> None:
        self.engine = engine
        self.storage = engine.ctx.storage

    def routes(self) -> list[Route]:
        return [
            Route("roles/?", {LIST: self.list_roles}),
            Route(
                f"roles/{NAME}",
                {
                    READ: self.read_role,
                    CREATE: self.write_role,
                    UPDATE: self.write_role,
                    DELETE: self.delete_role,
                },
                ROLE_FIELDS,
                existence=self._exists,
            ),
        ]

    async def load(self, name: str) -> Role | None:
        record = await self.storage.get_json(f"role/{name}")
        return None if record is None else Role.from_record(record)

    async def _exists(self, req: Request) -> bool:
        return await self.load(req.params["name"]) is not None

    async def list_roles(self, req: Request, data: dict) -> Response:
        keys = await self.storage.list("role/")
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def read_role(self, req: Request, data: dict) -> Response:
        role = await self.load(data["name"])
        if role is None:
            raise NotFound()
        return Response(data=role.public())

    async def write_role(self, req: Request, data: dict) -> None:
        role = await self.load(data["name"])
        role = _merge(role, data)
        _validate(role)
        await self.storage.put_json(f"role/{role.name}", asdict(role))

    async def delete_role(self, req: Request, data: dict) -> None:
        # Leases of this role keep the statements they were issued with, so
        # they are still revoked after the role is gone.
        await self.storage.delete(f"role/{data['name']}")


def _merge(role: Role | None, data: dict) -> Role:
    if role is None:
        role = Role(name=data["name"], db_name=data.get("db_name", ""))
    for key in STATEMENT_FIELDS:
        if key in data:
            setattr(role, key, statement_list(key, data[key]))
    for key in ("db_name", "default_ttl", "max_ttl", "credential_type"):
        if key in data:
            setattr(role, key, data[key])
    return role


def _validate(role: Role) -> None:
    if not role.db_name:
        raise BadRequest("field 'db_name' is required: the database connection's name")
    if not role.creation_statements:
        raise BadRequest(
            "field 'creation_statements' is required: at least one SQL statement"
        )
    if role.credential_type != PASSWORD:
        raise BadRequest(
            f"invalid credential_type {role.credential_type!r}: only "
            f"{PASSWORD!r} is supported"
        )
    if role.max_ttl and role.default_ttl > role.max_ttl:
        raise BadRequest(
            f"default_ttl ({role.default_ttl}s) must not exceed "
            f"max_ttl ({role.max_ttl}s)"
        )
