from __future__ import annotations

import pytest

from mssm.core.errors import BadRequest
from mssm.core.token_rules import (
    CreateRequest,
    TokenLimits,
    TokenRole,
    create_terms,
    display_name,
    renew_terms,
)

# The token mount tuned to default 30s, max 90s.
TUNED = TokenLimits(default_ttl=30, max_ttl=90)
ROOT = ["root"]


def create(request: CreateRequest, parent=ROOT, sudo=True, role=None, limits=TUNED):  # noqa: ANN001, ANN201
    return create_terms(request, parent, sudo, role, limits)


def renew(**kwargs):  # noqa: ANN003, ANN201
    values = {
        "creation_time": 0.0,
        "current_ttl": 30,
        "period": 0,
        "explicit_max_ttl": 0,
        "increment": 0,
        "role": None,
        "limits": TUNED,
        "now": 0.0,
    } | kwargs
    return renew_terms(**values)


def test_default_ttl_from_mount() -> None:
    terms = create(CreateRequest(policies=["default"]))
    assert terms.ttl == 30
    assert terms.renewable is True


def test_ttl_capped_by_mount_max_with_warning() -> None:
    terms = create(CreateRequest(policies=["default"], ttl=3600))
    assert terms.ttl == 90
    assert "TTL value is capped" in terms.warnings[0]


def test_root_child_without_ttl_never_expires() -> None:
    terms = create(CreateRequest())
    assert terms.policies == ["root"]
    assert terms.ttl == 0
    assert terms.renewable is False


def test_default_policy_added() -> None:
    terms = create(CreateRequest(policies=["app"]))
    assert terms.policies == ["app", "default"]


def test_no_default_policy() -> None:
    terms = create(CreateRequest(policies=["app"], no_default_policy=True))
    assert terms.policies == ["app"]


def test_child_inherits_parent_policies() -> None:
    terms = create(CreateRequest(), parent=["app", "default"], sudo=False)
    assert terms.policies == ["app", "default"]


def test_child_policy_outside_parent_rejected() -> None:
    request = CreateRequest(policies=["admin"])
    with pytest.raises(BadRequest, match="does not hold: admin"):
        create(request, parent=["app", "default"], sudo=False)


def test_child_cannot_get_root_policy() -> None:
    with pytest.raises(BadRequest, match="does not hold: root"):
        create(CreateRequest(policies=["root"]), parent=["app"], sudo=True)


def test_periodic_needs_sudo() -> None:
    request = CreateRequest(policies=["default"], period=30)
    with pytest.raises(BadRequest, match="root or sudo privileges required"):
        create(request, parent=["tok-create"], sudo=False)


def test_orphan_flag_needs_sudo() -> None:
    request = CreateRequest(no_parent=True)
    with pytest.raises(BadRequest, match="create orphan token"):
        create(request, parent=["app"], sudo=False)


def test_orphan_endpoint_needs_no_sudo() -> None:
    terms = create(CreateRequest(orphan_endpoint=True), parent=["app"], sudo=False)
    assert terms.orphan is True


def test_negative_num_uses_rejected() -> None:
    with pytest.raises(BadRequest, match="number of uses cannot be negative"):
        create(CreateRequest(num_uses=-1))


def test_batch_type_rejected() -> None:
    with pytest.raises(BadRequest, match="service tokens only"):
        create(CreateRequest(token_type="batch"))


def test_period_above_max_capped_with_warning() -> None:
    terms = create(CreateRequest(policies=["default"], period=7200))
    assert terms.ttl == 90
    assert terms.period == 7200
    assert "period value is capped" in terms.warnings[0]


def test_explicit_max_caps_ttl() -> None:
    limits = TokenLimits(768 * 3600, 768 * 3600)
    request = CreateRequest(policies=["default"], explicit_max_ttl=3600)
    terms = create(request, limits=limits)
    assert terms.ttl == 3600
    assert terms.explicit_max_ttl == 3600


def test_role_allowed_policies_default() -> None:
    role = TokenRole(name="r", allowed_policies=["app"])
    terms = create(CreateRequest(), parent=["app", "other"], sudo=False, role=role)
    assert terms.policies == ["app", "default"]


def test_role_cannot_widen_parent_policies() -> None:
    role = TokenRole(name="r", allowed_policies=["app"])
    with pytest.raises(BadRequest, match="parent does not hold: app"):
        create(CreateRequest(), parent=["other"], sudo=False, role=role)


def test_role_rejects_policy_outside_allowed() -> None:
    role = TokenRole(name="r", allowed_policies=["default"])
    with pytest.raises(BadRequest, match="not allowed: app"):
        create(CreateRequest(policies=["app"]), role=role)


def test_role_disallowed_policy() -> None:
    role = TokenRole(name="r", disallowed_policies=["admin"])
    with pytest.raises(BadRequest, match="'admin' is disallowed"):
        create(CreateRequest(policies=["admin"]), role=role)


def test_role_period_needs_no_sudo() -> None:
    role = TokenRole(name="r", allowed_policies=["default"], token_period=60)
    terms = create(CreateRequest(), parent=["x"], sudo=False, role=role)
    assert terms.period == 60
    assert terms.ttl == 60


def test_role_orphan() -> None:
    role = TokenRole(name="r", orphan=True)
    assert create(CreateRequest(), role=role).orphan is True


def test_display_name_prefixed() -> None:
    assert display_name("My App") == "token-my-app"
    assert display_name("") == "token"


# -- renewal, following a non-periodic token from t=0 with max 90s ---------------


def test_renew_uses_increment_from_now() -> None:
    terms = renew(increment=60, now=20.0)
    assert terms.ttl == 60
    assert terms.warnings == []


def test_renew_capped_at_max_from_creation() -> None:
    terms = renew(increment=60, now=70.0)
    assert terms.ttl == 20
    assert "TTL value is capped" in terms.warnings[0]


def test_renew_without_increment_reuses_current_ttl() -> None:
    assert renew(current_ttl=25, now=10.0).ttl == 25


def test_periodic_renew_ignores_increment() -> None:
    assert renew(period=30, increment=3600, now=150.0).ttl == 30


def test_periodic_renew_outlives_mount_max() -> None:
    assert renew(period=30, now=1000.0).ttl == 30


def test_periodic_renew_capped_by_mount_max() -> None:
    terms = renew(period=7200, now=10.0)
    assert terms.ttl == 90
    assert "period value is capped" in terms.warnings[0]


def test_periodic_renew_capped_by_explicit_max() -> None:
    assert renew(period=30, explicit_max_ttl=75, now=40.0).ttl == 30
    terms = renew(period=30, explicit_max_ttl=75, now=60.0)
    assert terms.ttl == 15
    assert "TTL value is capped" in terms.warnings[0]


def test_renew_reads_current_role_period() -> None:
    role = TokenRole(name="batchjob", token_period=20)
    assert renew(period=60, role=role, now=5.0).ttl == 20
