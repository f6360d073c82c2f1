"""Shamir's secret sharing over GF(2^8), byte by byte.

Each share is the secret's bytes evaluated on random polynomials of degree
threshold-1 at one non-zero x coordinate, with that x appended as the last
byte. The field uses the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11B).
"""

from __future__ import annotations

import secrets

_EXP = [0] * 512
_LOG = [0] * 256


def _build_tables() -> None:
    value = 1
    for power in range(255):
        _EXP[power] = value
        _LOG[value] = power
        # Multiply by the generator 3: value * 2 xor value, reduced mod 0x11B.
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= 0x11B
        value = doubled ^ value
    for power in range(255, 512):
        _EXP[power] = _EXP[power - 255]


_build_tables()


def gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(2^8)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def _evaluate(coefficients: list[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = gf_mul(result, x) ^ coefficient
    return result


def split(secret: bytes, shares: int, threshold: int) -> list[bytes]:
    """Split secret into `shares` parts, any `threshold` of which rebuild it."""
    if not secret:
        raise ValueError("secret must not be empty")
    if not 1 <= threshold <= shares <= 255:
        raise ValueError("need 1 <= threshold <= shares <= 255")
    xs = _distinct_coordinates(shares)
    outputs = [bytearray() for _ in range(shares)]
    for secret_byte in secret:
        coefficients = [secret_byte] + [
            secrets.randbelow(256) for _ in range(threshold - 1)
        ]
        for output, x in zip(outputs, xs, strict=True):
            output.append(_evaluate(coefficients, x))
    return [bytes(output) + bytes([x]) for output, x in zip(outputs, xs, strict=True)]


def _distinct_coordinates(count: int) -> list[int]:
    pool = list(range(1, 256))
    chosen = []
    for _ in range(count):
        chosen.append(pool.pop(secrets.randbelow(len(pool))))
    return chosen


def combine(parts: list[bytes]) -> bytes:
    """Rebuild the secret by Lagrange interpolation at x = 0."""
    if not parts:
        raise ValueError("no shares given")
    length = len(parts[0])
    if length < 2 or any(len(part) != length for part in parts):
        raise ValueError("shares must have the same length of at least 2 bytes")
    xs = [part[-1] for part in parts]
    if len(set(xs)) != len(xs) or 0 in xs:
        raise ValueError("shares must have distinct non-zero coordinates")

    secret = bytearray()
    for index in range(length - 1):
        value = 0
        for i, x_i in enumerate(xs):
            weight = 1
            for j, x_j in enumerate(xs):
                if i != j:
                    weight = gf_mul(weight, gf_div(x_j, x_j ^ x_i))
            value ^= gf_mul(parts[i][index], weight)
        secret.append(value)
    return bytes(secret)
