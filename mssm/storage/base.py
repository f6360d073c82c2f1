"""The storage backend contract.

A backend is a flat key-value store of bytes. Keys are '/'-separated paths.
Backends never see plaintext: the barrier encrypts every value first.
All methods are coroutines so that a backend may do network I/O (PostgreSQL)
or hand blocking calls to a thread (SQLite).
"""

from __future__ import annotations

import abc


class StorageError(Exception):
    """The backend failed to read or write; the request must fail closed."""


class Backend(abc.ABC):
    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """Return the value stored at key, or None."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> None:
        """Store value at key durably before returning."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove key; a missing key is not an error."""

    @abc.abstractmethod
    async def list(self, prefix: str) -> list[str]:
        """Return the sorted direct children of prefix.

        A child that has children of its own is returned once, with a
        trailing '/', as Vault's storage listing does.
        """

    @abc.abstractmethod
    async def put_if(self, key: str, value: bytes, expected: bytes | None) -> bool:
        """Store value only if the current value equals expected.

        expected None means the key must not exist. Returns whether the
        write happened; the compare and the write are atomic.
        """

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every key under prefix."""
        for key in await self.keys_under(prefix):
            await self.delete(key)

    @abc.abstractmethod
    async def keys_under(self, prefix: str) -> list[str]:
        """Return every key that starts with prefix, at any depth."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def unavailable(self) -> str | None:
        """Return why storage must not be used now, or None when it may.

        The server keeps stored values, tokens and policies in memory, and
        those copies are only as current as this process's hold on its
        storage: while this returns a reason, no request is served from
        them either.
        """
        return None


def direct_children(prefix: str, keys: list[str]) -> list[str]:
    children: set[str] = set()
    for key in keys:
        rest = key[len(prefix) :]
        head, slash, _ = rest.partition("/")
        children.add(head + slash)
    return sorted(children)
