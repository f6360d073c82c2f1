"""In-memory backend for dev mode and tests; nothing survives a restart."""

from __future__ import annotations

from mssm.storage.base import Backend, direct_children


class InmemBackend(Backend):
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self._data[key] = value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def list(self, prefix: str) -> list[str]:
        return direct_children(prefix, await self.keys_under(prefix))

    async def keys_under(self, prefix: str) -> list[str]:
        return [key for key in self._data if key.startswith(prefix)]

    async def put_if(self, key: str, value: bytes, expected: bytes | None) -> bool:
        if self._data.get(key) != expected:
            return False
        self._data[key] = value
        return True
