"""Static roles: existing database users whose password MSSM rotates.

database/static-roles/:name, static-creds/:name and rotate-role/:name.
The password is rotated when the role is created, every rotation_period
after that, and on request. A failed rotation keeps the last password that
was applied (reads return it) and is retried with a freshly generated one.
A rotation that was running when the server stopped is redone at the next
unseal, because the database may hold a password that was never stored.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mssm.core.errors import APIError, BadRequest, NotFound
from mssm.core.fields import ANY, DURATION, STRING, Field
from mssm.core.lease_record import format_time
from mssm.core.request import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from mssm.engines.base import Route
from mssm.engines.database.config import NAME, statement_list
from mssm.engines.database.plugin import UNSAFE_PASSWORD_CHARS, DatabaseError

if TYPE_CHECKING:
    from mssm.engines.database import DatabaseEngine

logger = logging.getLogger(__name__)

MIN_ROTATION_PERIOD = 5
TICK_SECONDS = 1.0
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0
STATIC_FIELDS = {
    "db_name": Field(STRING),
    "username": Field(STRING),
    "rotation_period": Field(DURATION),
    "rotation_statements": Field(ANY),
    "credential_type": Field(STRING),
    "rotation_schedule": Field(STRING),
    "rotation_window": Field(ANY),
}


@dataclass
class StaticRole:
    name: str
    db_name: str
    username: str
    rotation_period: int
    rotation_statements: list[str] = field(default_factory=list)
    credential_type: str = "password"
    password: str = ""
    last_vault_rotation: float = 0.0
    # Set while a rotation runs; still set at startup if the server stopped
    # in the middle of one.
    rotation_started: float = 0.0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StaticRole:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def next_rotation(self) -> float:
        if self.rotation_started:
            return 0.0
        return self.last_vault_rotation + self.rotation_period


class StaticRoles:
    def __init__(self, engine: DatabaseEngine) -> None:
        self.engine = engine
        self.storage = engine.ctx.storage
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task | None = None

    def routes(self) -> list[Route]:
        return [
            Route("static-roles/?", {LIST: self.list_roles}),
            Route(
                f"static-roles/{NAME}",
                {
                    READ: self.read_role,
                    CREATE: self.write_role,
                    UPDATE: self.write_role,
                    DELETE: self.delete_role,
                },
                STATIC_FIELDS,
            ),
            Route(f"static-creds/{NAME}", {READ: self.read_creds}),
            Route(f"rotate-role/{NAME}", {UPDATE: self.rotate_role}),
        ]

    # -- schedule --------------------------------------------------------------

    async def start(self) -> None:
        for key in await self.storage.list("static-role/"):
            role = await self.load(key)
            if role is not None:
                self._due[role.name] = role.next_rotation()
        self._task = asyncio.create_task(self._run(), name="static-role-rotation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.rotate_due()
            except Exception:
                logger.exception("static role rotation pass failed")

    async def rotate_due(self) -> None:
        now = self.engine.ctx.core.clock()
        due = [name for name, when in self._due.items() if when <= now]
        for name in due:
            try:
                await self.rotate(name)
            except (APIError, DatabaseError) as exc:
                logger.warning(
                    "scheduled rotation of static role %s failed: %s", name, exc
                )

    # -- storage ---------------------------------------------------------------

    async def load(self, name: str) -> StaticRole | None:
        record = await self.storage.get_json(f"static-role/{name}")
        return None if record is None else StaticRole.from_record(record)

    async def save(self, role: StaticRole) -> None:
        await self.storage.put_json(f"static-role/{role.name}", asdict(role))

    # -- rotation ----------------------------------------------------------------

    async def rotate(self, name: str, role: StaticRole | None = None) -> StaticRole:
        """Set a new password on the database, then store it.

        role is given when the role is being created and is not stored yet.
        """
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            stored = role is None
            role = role or await self.load(name)
            if role is None:
                self._due.pop(name, None)
                raise BadRequest("no static role found for role name")
            await self._rotate_locked(role, stored)
            return role

    async def _rotate_locked(self, role: StaticRole, stored: bool) -> None:
        connections = self.engine.connections
        clock = self.engine.ctx.core.clock
        config, database = await self._connection(role)
        password = await connections.generate_password(config)
        if stored:
            role.rotation_started = clock()
            await self.save(role)
        try:
            await database.set_password(
                role.username, role.rotation_statements, password
            )
        except DatabaseError as exc:
            self._schedule_retry(role)
            raise APIError(
                f"failed to rotate the password of {role.username}: {exc}"
            ) from None
        role.password = password
        role.last_vault_rotation = clock()
        role.rotation_started = 0.0
        await self.save(role)
        self._failures.pop(role.name, None)
        self._due[role.name] = role.next_rotation()
        logger.info("rotated the password of static role %s", role.name)

    async def _connection(self, role: StaticRole) -> tuple[Any, Any]:
        try:
            config, database = await self.engine.connections.database(role.db_name)
        except DatabaseError as exc:
            self._schedule_retry(role)
            raise APIError(str(exc)) from None
        if not config.allows(role.name):
            raise APIError(f"{role.name!r} is not an allowed role")
        return config, database

    def _schedule_retry(self, role: StaticRole) -> None:
        failures = self._failures.get(role.name, 0) + 1
        self._failures[role.name] = failures
        delay = min(RETRY_BASE_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS)
        if role.name in self._due or role.rotation_started:
            self._due[role.name] = self.engine.ctx.core.clock() + delay

    # -- handlers ----------------------------------------------------------------

    async def list_roles(self, req: Request, data: dict) -> Response:
        keys = await self.storage.list("static-role/")
        if not keys:
            raise NotFound()
        return Response(data={"keys": keys})

    async def read_role(self, req: Request, data: dict) -> Response:
        role = await self.load(data["name"])
        if role is None:
            raise NotFound()
        return Response(
            data={
                "credential_type": role.credential_type,
                "db_name": role.db_name,
                "last_vault_rotation": format_time(role.last_vault_rotation or None),
                "rotation_period": role.rotation_period,
                "rotation_statements": role.rotation_statements,
                "username": role.username,
            }
        )

    async def read_creds(self, req: Request, data: dict) -> Response:
        role = await self.load(data["name"])
        if role is None:
            raise BadRequest(f"unknown role: {data['name']}")
        now = self.engine.ctx.core.clock()
        ttl = max(int(role.last_vault_rotation + role.rotation_period - now), 0)
        return Response(
            data={
                "last_vault_rotation": format_time(role.last_vault_rotation or None),
                "password": role.password,
                "rotation_period": role.rotation_period,
                "ttl": ttl,
                "username": role.username,
            }
        )

    async def write_role(self, req: Request, data: dict) -> None:
        name = data["name"]
        existing = await self.load(name)
        role = _merge(existing, data)
        if existing is None:
            # The role exists only once its first rotation worked, so its
            # password is never one that MSSM does not know.
            await self.rotate(name, role)
            return
        await self.save(role)
        self._due[name] = role.next_rotation()

    async def delete_role(self, req: Request, data: dict) -> None:
        # The database user belongs to the operator and is left in place.
        await self.storage.delete(f"static-role/{data['name']}")
        self._due.pop(data["name"], None)
        self._failures.pop(data["name"], None)

    async def rotate_role(self, req: Request, data: dict) -> None:
        await self.rotate(data["name"])


def _merge(role: StaticRole | None, data: dict) -> StaticRole:
    if data.get("rotation_schedule") or data.get("rotation_window"):
        raise BadRequest(
            "rotation_schedule and rotation_window are not supported; "
            "use rotation_period"
        )
    if role is None:
        role = _new_role(data)
    elif "username" in data and data["username"] != role.username:
        raise BadRequest("cannot update static account username")
    if "db_name" in data:
        role.db_name = data["db_name"]
    if "rotation_period" in data:
        role.rotation_period = _period(data["rotation_period"])
    if "rotation_statements" in data:
        role.rotation_statements = statement_list(
            "rotation_statements", data["rotation_statements"]
        )
    if data.get("credential_type", "password") != "password":
        raise BadRequest("invalid credential_type: only 'password' is supported")
    return role


def _new_role(data: dict) -> StaticRole:
    if not data.get("db_name"):
        raise BadRequest("field 'db_name' is required: the database connection's name")
    username = data.get("username", "")
    if not username:
        raise BadRequest("username is a required field to create a static account")
    _check_username(username)
    if "rotation_period" not in data:
        raise BadRequest("rotation_period is required to create static accounts")
    return StaticRole(
        name=data["name"],
        db_name=data["db_name"],
        username=username,
        rotation_period=_period(data["rotation_period"]),
    )


def _check_username(username: str) -> None:
    # The name is substituted into the operator's quoted statements.
    bad = sorted({c for c in username if c in UNSAFE_PASSWORD_CHARS or ord(c) < 32})
    if bad or ";" in username:
        raise BadRequest(
            f"invalid username {username!r}: quotes, backslashes, backticks, "
            "semicolons and control characters are not allowed"
        )


def _period(seconds: int) -> int:
    if seconds < MIN_ROTATION_PERIOD:
        raise BadRequest(
            f"rotation_period must be {MIN_ROTATION_PERIOD} seconds or more"
        )
    return seconds
