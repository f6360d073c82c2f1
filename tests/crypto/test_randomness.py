"""Random strings: the right length and alphabet, and no character favoured.

The counts below are checked against bounds six or more standard deviations
wide, so a correct generator fails them about once in a billion runs, while
mapping bytes with a plain modulo fails them every time.
"""

from __future__ import annotations

import string
from collections import Counter
from itertools import permutations

import pytest

from mssm.crypto.randomness import RandomBytes, random_string

BASE62 = string.ascii_letters + string.digits


def test_string_has_length_and_alphabet() -> None:
    value = random_string(BASE62, 24)
    assert len(value) == 24
    assert set(value) <= set(BASE62)


def test_strings_differ() -> None:
    assert len({random_string(BASE62, 24) for _ in range(1000)}) == 1000


def test_no_character_favoured_by_modulo() -> None:
    # 256 % 200 = 56: with a plain modulo the first 56 characters would come
    # twice as often as the others.
    alphabet = "".join(chr(0x100 + n) for n in range(200))
    counts = Counter(random_string(alphabet, 100_000))
    assert len(counts) == 200
    assert min(counts.values()) > 350
    assert max(counts.values()) < 650


def test_base62_characters_equally_likely() -> None:
    counts = Counter(random_string(BASE62, 62_000))
    assert min(counts.values()) > 800
    assert max(counts.values()) < 1200


def test_shuffle_reaches_every_order_evenly() -> None:
    source = RandomBytes(64)
    seen: Counter = Counter()
    for _ in range(60_000):
        items = [0, 1, 2]
        source.shuffle(items)
        seen[tuple(items)] += 1
    assert set(seen) == set(permutations([0, 1, 2]))
    assert min(seen.values()) > 9_400
    assert max(seen.values()) < 10_600


def test_below_large_bound() -> None:
    values = {RandomBytes(16).below(100_000) for _ in range(200)}
    assert all(0 <= value < 100_000 for value in values)
    assert len(values) > 150


def test_below_rejects_empty_range() -> None:
    with pytest.raises(ValueError, match="bound must be a positive integer, got 0"):
        RandomBytes(16).below(0)
