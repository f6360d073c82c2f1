from __future__ import annotations

import random
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssm.crypto import shamir


@pytest.mark.parametrize("threshold", range(1, 11))
def test_split_combine_every_threshold(threshold: int) -> None:
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, threshold + 2, threshold)
    for _ in range(5):
        subset = random.sample(shares, threshold)
        assert shamir.combine(subset) == secret


def test_combine_below_threshold_differs() -> None:
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, 5, 3)
    assert shamir.combine(shares[:2]) != secret


def test_field_inverse_table() -> None:
    for a in range(1, 256):
        assert shamir.gf_mul(a, shamir.gf_div(1, a)) == 1


@settings(max_examples=30, deadline=None)
@given(threshold=st.integers(min_value=2, max_value=6), byte=st.integers(0, 255))
def test_fewer_shares_leave_every_value_possible(threshold: int, byte: int) -> None:
    """With t-1 shares fixed, each candidate secret byte has exactly one
    polynomial through them, so every value of the byte stays equally likely."""
    shares = shamir.split(bytes([byte]), threshold, threshold)
    known = shares[: threshold - 1]
    missing_x = shares[-1][-1]
    candidates = set()
    for guess in range(256):
        forged = known + [bytes([guess, missing_x])]
        candidates.add(shamir.combine(forged)[0])
    assert len(candidates) == 256


def test_split_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError, match="threshold"):
        shamir.split(b"k", 2, 3)
