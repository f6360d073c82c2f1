"""Random strings from the operating system's generator, one read per string.

`secrets.choice` reads from the OS once per character, so a 20-character
password cost 20 system calls, and a database credential (username,
password and lease id) 64.
These functions read all the bytes a string needs at once and map each to
a character by rejection sampling, so that every character stays equally
likely.
"""

from __future__ import annotations

import os
import secrets

# A byte maps to alphabet[byte % size] only below the largest multiple of
# size, so no character is favoured; the rest are drawn again.
_BYTE_VALUES = 256


class RandomBytes:
    """Uniform choices from bytes read from os.urandom in blocks."""

    def __init__(self, expected: int) -> None:
        self._block = max(expected, 16)
        self._pending = b""
        self._offset = 0

    def below(self, bound: int) -> int:
        """Return an integer in [0, bound)."""
        if bound > _BYTE_VALUES:
            return secrets.randbelow(bound)
        if bound < 1:
            raise ValueError(f"bound must be a positive integer, got {bound}")
        limit = _BYTE_VALUES - _BYTE_VALUES % bound
        while True:
            byte = self._next_byte()
            if byte < limit:
                return byte % bound

    def choice(self, alphabet: str) -> str:
        return alphabet[self.below(len(alphabet))]

    def shuffle(self, items: list) -> None:
        """Shuffle items in place (Fisher-Yates)."""
        for last in range(len(items) - 1, 0, -1):
            other = self.below(last + 1)
            items[last], items[other] = items[other], items[last]

    def _next_byte(self) -> int:
        if self._offset >= len(self._pending):
            self._pending = os.urandom(self._block)
            self._offset = 0
        byte = self._pending[self._offset]
        self._offset += 1
        return byte


def random_string(alphabet: str, length: int) -> str:
    """Return length characters drawn uniformly from alphabet."""
    # A quarter more bytes than characters covers the rejected ones in most
    # calls, so a string usually takes one read.
    source = RandomBytes(length + length // 4 + 4)
    return "".join(source.choice(alphabet) for _ in range(length))
