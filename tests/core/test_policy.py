from __future__ import annotations

import pytest

from mssm.core.errors import BadRequest
from mssm.core.policy import ACL, DENIED, Policy, effective_capabilities, parse_policy


def acl(*texts: str) -> ACL:
    return ACL(Policy(f"p{i}", t, parse_policy(t)) for i, t in enumerate(texts))


def rule(pattern: str, *capabilities: str) -> str:
    listed = ", ".join(f'"{c}"' for c in capabilities)
    return f'path "{pattern}" {{\n  capabilities = [{listed}]\n}}\n'


# (pattern a, pattern b, path) where a must win over b for path.
PRIORITY_CASES = [
    ("secret/data/app", "secret/data/*", "secret/data/app"),
    ("secret/data/app*", "secret/*", "secret/data/app1"),
    ("secret/+/app", "secret/*", "secret/data/app"),
    ("secret/+/app/*", "secret/+/+/*", "secret/data/app/x"),
    ("secret/data/app/*", "secret/data/+/*", "secret/data/app/x"),
    ("secret/data/longer*", "secret/data/l*", "secret/data/longer-key"),
    # Same wildcard position, shape and length: the larger string wins.
    ("a/+/c/+", "a/+/+/d", "a/b/c/d"),
]


@pytest.mark.parametrize(("winner", "loser", "path"), PRIORITY_CASES)
def test_priority_higher_pattern_decides(winner: str, loser: str, path: str) -> None:
    both = acl(rule(winner, "read"), rule(loser, "deny"))
    assert both.capabilities(path) == {"read"}
    reversed_caps = acl(rule(winner, "deny"), rule(loser, "read"))
    assert reversed_caps.capabilities(path) == {"deny"}


def test_priority_later_wildcard_wins() -> None:
    policy = acl(rule("secret/+/b", "read"), rule("secret/a/+", "list"))
    assert policy.capabilities("secret/a/b") == {"list"}


def test_deny_overrides_sudo_in_same_pattern() -> None:
    merged = acl(rule("sys/audit", "sudo", "read"), rule("sys/audit", "deny"))
    assert merged.capabilities("sys/audit") >= {"deny"}
    assert merged.decide("sys/audit", "read") == DENIED


def test_deny_in_lower_priority_rule_ignored() -> None:
    policy = acl(rule("secret/*", "deny"), rule("secret/data/app", "read"))
    assert policy.decide("secret/data/app", "read").allowed is True


def test_union_of_same_pattern_across_policies() -> None:
    policy = acl(rule("secret/data/x", "read"), rule("secret/data/x", "update"))
    assert policy.capabilities("secret/data/x") == {"read", "update"}


def test_plus_matches_one_segment_only() -> None:
    policy = acl(rule("secret/+/db", "read"))
    assert policy.decide("secret/app/db", "read").allowed is True
    assert policy.decide("secret/app/x/db", "read").allowed is False
    assert policy.decide("secret/db", "read").allowed is False


def test_glob_is_a_prefix_match() -> None:
    policy = acl(rule("secret/data/app*", "read"))
    assert policy.decide("secret/data/app", "read").allowed is True
    assert policy.decide("secret/data/apple/x", "read").allowed is True
    assert policy.decide("secret/data/ap", "read").allowed is False


def test_list_matches_exact_rule_without_slash() -> None:
    policy = acl(rule("secret/metadata/app", "list"))
    assert policy.decide("secret/metadata/app/", "list").allowed is True
    assert policy.decide("secret/metadata/app/", "read").allowed is False


def test_no_match_means_no_capability() -> None:
    policy = acl(rule("secret/data/app", "read"))
    assert effective_capabilities(policy, "secret/data/other") == ["deny"]


def test_cache_returns_same_answer_after_fill() -> None:
    policy = acl(rule("kv/*", "read"))
    for i in range(3):
        assert policy.decide(f"kv/{i}", "read").allowed is True
        assert policy.decide(f"kv/{i}", "read").allowed is True


def test_legacy_policy_shorthand() -> None:
    policy = acl('path "secret/*" { policy = "write" }')
    assert policy.capabilities("secret/x") == {
        "create",
        "read",
        "update",
        "delete",
        "list",
    }


def test_json_policy_parsed() -> None:
    policy = acl('{"path": {"secret/*": {"capabilities": ["read", "list"]}}}')
    assert policy.capabilities("secret/a") == {"read", "list"}


def test_leading_slash_stripped() -> None:
    policy = acl(rule("/secret/data/x", "read"))
    assert policy.capabilities("secret/data/x") == {"read"}


def test_invalid_capability_names_rule_and_line() -> None:
    text = rule("ok/path", "read") + rule("bad/path", "reed")
    with pytest.raises(BadRequest, match=r'path "bad/path" \(line 4\).*"?reed'):
        parse_policy(text)


def test_malformed_hcl_names_line() -> None:
    with pytest.raises(BadRequest, match="invalid HCL at line 3"):
        parse_policy('path "x" {\n  capabilities = ["read"\n')


def test_malformed_json_rejected() -> None:
    with pytest.raises(BadRequest, match="invalid JSON"):
        parse_policy('{"path": ')


def test_empty_policy_rejected() -> None:
    with pytest.raises(BadRequest, match="not supplied or empty"):
        parse_policy("   ")


def test_star_inside_pattern_rejected() -> None:
    with pytest.raises(BadRequest, match=r"'\*' is allowed only at the end"):
        parse_policy(rule("secret/*/x", "read"))


def test_unsupported_parameter_keys_rejected() -> None:
    text = 'path "x" {\n  capabilities = ["read"]\n  denied_parameters = {}\n}\n'
    with pytest.raises(BadRequest, match="'denied_parameters' is not supported"):
        parse_policy(text)


def test_unknown_top_level_key_rejected() -> None:
    with pytest.raises(BadRequest, match="unknown top-level key 'foo'"):
        parse_policy('foo = "bar"')


def test_capabilities_must_be_list() -> None:
    with pytest.raises(BadRequest, match="capabilities must be a list"):
        parse_policy('path "x" { capabilities = "read" }')
