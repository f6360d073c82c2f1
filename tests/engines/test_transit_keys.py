"""Key versions and options without a server: version bounds for writes
and reads, rotation with publish_ahead, trimming and config validation."""

from __future__ import annotations

import pytest

from mssm.core.errors import BadRequest
from mssm.engines.transit.keys import KEY_TYPES, KeyPolicy, KeyVersion

T0 = 1_800_000_000.0


def version(number: int, created: float, activation: float | None = None) -> KeyVersion:
    return KeyVersion(
        number=number,
        creation_time=created,
        activation_time=created if activation is None else activation,
        key=b"k" * 32,
        hmac_key=b"h" * 32,
    )


def policy_with(count: int, kind: str = "ecdsa-p256") -> KeyPolicy:
    policy = KeyPolicy(name="k", type=KEY_TYPES[kind])
    for number in range(1, count + 1):
        policy.add_version(version(number, T0 + number))
    return policy


def test_write_version_defaults_to_latest() -> None:
    policy = policy_with(3)
    assert policy.write_version(0, T0 + 10).number == 3


def test_write_version_rejects_out_of_range() -> None:
    policy = policy_with(3)
    policy.configure({"min_encryption_version": 2})
    with pytest.raises(BadRequest, match="below min_encryption_version 2"):
        policy.write_version(1, T0 + 10)
    with pytest.raises(BadRequest, match="above the latest version 3"):
        policy.write_version(9, T0 + 10)
    with pytest.raises(BadRequest, match="must not be negative"):
        policy.write_version(-1, T0 + 10)


def test_read_version_bounds_by_min_decryption() -> None:
    policy = policy_with(3)
    policy.configure({"min_decryption_version": 2})
    assert policy.read_version(2).number == 2
    with pytest.raises(BadRequest, match="below the key's min_decryption_version 2"):
        policy.read_version(1)
    with pytest.raises(BadRequest, match="too new"):
        policy.read_version(9)


def test_signing_version_waits_for_activation() -> None:
    policy = policy_with(1)
    policy.add_version(version(2, T0 + 100, activation=T0 + 200))
    assert policy.latest_version == 2
    assert policy.signing_version(T0 + 150) == 1
    assert [v.number for v in policy.pending_versions(T0 + 150)] == [2]
    assert policy.signing_version(T0 + 200) == 2
    assert policy.pending_versions(T0 + 200) == []


def test_next_key_change_is_earliest_event() -> None:
    policy = policy_with(1)
    policy.auto_rotate_period = 3600
    assert policy.next_key_change(T0 + 10) == T0 + 1 + 3600
    policy.add_version(version(2, T0 + 100, activation=T0 + 160))
    assert policy.next_key_change(T0 + 110) == T0 + 160


def test_rotation_due_from_latest_creation() -> None:
    policy = policy_with(2)
    assert policy.rotation_due(T0 + 10**6) is False
    policy.configure({"auto_rotate_period": 3600})
    assert policy.rotation_due(T0 + 2 + 3599) is False
    assert policy.rotation_due(T0 + 2 + 3600) is True


def test_configure_rejects_min_decryption_above_latest() -> None:
    policy = policy_with(2)
    with pytest.raises(BadRequest, match="latest key version is 2"):
        policy.configure({"min_decryption_version": 5})
    with pytest.raises(BadRequest, match="latest key version is 2"):
        policy.configure({"min_encryption_version": 5})


def test_configure_rejects_encryption_below_decryption() -> None:
    policy = policy_with(3)
    with pytest.raises(BadRequest, match="at least min_decryption_version 3"):
        policy.configure({"min_decryption_version": 3, "min_encryption_version": 2})


def test_configure_rejects_short_rotate_period() -> None:
    policy = policy_with(1)
    with pytest.raises(BadRequest, match="at least 1h"):
        policy.configure({"auto_rotate_period": 1800})
    assert policy.configure({"auto_rotate_period": 0}) == []


def test_configure_keeps_exportable_once_set() -> None:
    policy = policy_with(1)
    policy.configure({"exportable": True})
    warnings = policy.configure({"exportable": False})
    assert policy.exportable is True
    assert warnings == ["exportable cannot be disabled once set; it stays true"]


def test_configure_rejects_jwt_options_on_aes() -> None:
    policy = policy_with(1, "aes256-gcm96")
    with pytest.raises(BadRequest, match="does not sign JWTs"):
        policy.configure({"jwt_issuer": "https://issuer"})


def test_configure_rejects_foreign_jwt_algorithm() -> None:
    policy = policy_with(1, "rsa-2048")
    policy.configure({"jwt_algorithm": "PS256"})
    assert policy.jwt_alg == "PS256"
    with pytest.raises(BadRequest, match="expected one of ES256"):
        policy_with(1).configure({"jwt_algorithm": "RS256"})


def test_configure_rejects_publish_on_hmac() -> None:
    policy = policy_with(1, "hmac")
    with pytest.raises(BadRequest, match="no public key to publish"):
        policy.configure({"publish": True})
    with pytest.raises(BadRequest, match="no public key to publish ahead"):
        policy.configure({"publish_ahead": 60})


def test_configure_rejects_publish_ahead_past_rotation() -> None:
    policy = policy_with(1)
    with pytest.raises(BadRequest, match="shorter than auto_rotate_period"):
        policy.configure({"auto_rotate_period": 3600, "publish_ahead": 3600})


def test_configure_rejects_large_leeway() -> None:
    with pytest.raises(BadRequest, match="maximum is 300s"):
        policy_with(1).configure({"jwt_leeway": 301})


def test_trim_requires_min_encryption() -> None:
    policy = policy_with(3)
    with pytest.raises(BadRequest, match="set min_encryption_version first"):
        policy.trim(2)


def test_trim_deletes_old_versions() -> None:
    policy = policy_with(3)
    policy.configure({"min_decryption_version": 2, "min_encryption_version": 3})
    assert policy.trim(2) == [1]
    assert sorted(policy.versions) == [2, 3]
    assert policy.min_available_version == 2


def test_trim_rejects_bad_bounds() -> None:
    policy = policy_with(3)
    policy.configure({"min_decryption_version": 2, "min_encryption_version": 3})
    with pytest.raises(BadRequest, match="above min_decryption_version 2"):
        policy.trim(3)
    policy.trim(2)
    with pytest.raises(BadRequest, match="cannot be lowered from 2"):
        policy.trim(1)
    with pytest.raises(BadRequest, match="below min_available_version 2"):
        policy.configure({"min_decryption_version": 1})


def test_copy_shares_versions_not_dict() -> None:
    policy = policy_with(1)
    clone = policy.copy()
    clone.add_version(version(2, T0 + 5))
    assert sorted(policy.versions) == [1]
    assert clone.versions[1] is policy.versions[1]


def test_json_round_trip_keeps_fields() -> None:
    policy = policy_with(2)
    policy.configure({"publish": True, "jwt_issuer": "https://i", "exportable": True})
    restored = KeyPolicy.from_json(policy.to_json())
    assert restored.to_json() == policy.to_json()
    assert restored.versions[2].key == b"k" * 32


def test_version_repr_hides_key() -> None:
    text = repr(version(1, T0))
    assert "kkkk" not in text
    assert "hhhh" not in text
