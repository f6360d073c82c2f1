"""Key material and primitives: AEAD, Shamir's secret sharing, key derivation.

Only the barrier, the seal and the signing-key engine import this package.
"""
