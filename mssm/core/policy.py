"""ACL policies: parsing (HCL or JSON), the compiled matcher, the store.

A policy is a list of path rules, each a pattern and a set of capabilities.
Patterns are exact paths, a `*` glob at the end (a prefix match), and `+`
segments that match any one path segment. For a request path, the matching
pattern with the highest priority decides, using Vault's documented order
(see `_priority`). Rules with the same pattern in several of a token's
policies are merged, and `deny` in the merged rule removes every other
capability, `sudo` included.

Compiled matchers are cached per set of policy names and dropped whenever a
policy changes, so a change applies to the next request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import hcl2
import orjson
from hcl2.utils import SerializationOptions
from lark.exceptions import UnexpectedInput

from mssm.core.barrier import StorageView
from mssm.core.errors import BadRequest
from mssm.core.request import CREATE, DELETE, LIST, PATCH, READ, UPDATE

logger = logging.getLogger(__name__)

CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny")
OPERATION_CAPABILITY = {
    READ: "read",
    CREATE: "create",
    UPDATE: "update",
    PATCH: "patch",
    DELETE: "delete",
    LIST: "list",
}
# The shorthand `policy = "..."` of Vault's first policy syntax.
LEGACY_POLICY = {
    "deny": frozenset({"deny"}),
    "read": frozenset({"read", "list"}),
    "write": frozenset({"create", "read", "update", "delete", "list"}),
    "sudo": frozenset({"create", "read", "update", "patch", "delete", "list", "sudo"}),
}
# Rule keys Vault accepts that MSSM does not enforce. A policy that uses
# them is rejected: ignoring a parameter restriction would grant more than
# its author wrote.
UNSUPPORTED_RULE_KEYS = frozenset(
    {
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "control_group",
        "mfa_methods",
    }
)
BUILTIN_ROOT = "root"
BUILTIN_DEFAULT = "default"
ACL_CACHE_PATHS = 10_000

DEFAULT_POLICY = """\
# Every token gets this policy unless it is created with no_default_policy.

# Let a token read its own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Let a token extend its own TTL.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Let a token revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Let a token list its own capabilities on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Renew and look up a lease whose id the caller already holds.
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Response wrapping: wrap a value, and look up or unwrap a wrapping token.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
"""

_HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    sudo: bool = False


ROOT_DECISION = Decision(True, True)
DENIED = Decision(False, False)


@dataclass(frozen=True)
class PathRule:
    pattern: str
    capabilities: frozenset[str]


@dataclass
class Policy:
    """A stored policy: its text as written and the rules parsed from it."""

    name: str
    text: str
    rules: list[PathRule]
    version: int = 1
    modified: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "policy": self.text,
            "version": self.version,
            "modified": self.modified,
        }


# -- parsing -------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """Lower-case a policy name, as Vault stores it, and reject empty names."""
    normalized = name.strip().lower()
    if not normalized:
        raise BadRequest("policy name must not be empty")
    return normalized


def parse_policy(text: str) -> list[PathRule]:
    """Parse HCL or JSON policy text; raise BadRequest naming the line or rule."""
    if not text.strip():
        raise BadRequest("'policy' parameter not supplied or empty")
    if text.lstrip().startswith("{"):
        document = _load_json(text)
    else:
        document = _load_hcl(text)
    return _rules(document, text)


def _load_json(text: str) -> dict[str, Any]:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"failed to parse policy: invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("failed to parse policy: the JSON document must be an object")
    return document


def _load_hcl(text: str) -> dict[str, Any]:
    try:
        return hcl2.loads(text, serialization_options=_HCL_OPTIONS)
    except UnexpectedInput as exc:
        raise BadRequest(
            f"failed to parse policy: invalid HCL at line {exc.line}, "
            f"column {exc.column}"
        ) from None
    except Exception as exc:
        # python-hcl2 raises plain exceptions for some malformed input.
        raise BadRequest(f"failed to parse policy: invalid HCL: {exc}") from None


def _rules(document: dict[str, Any], text: str) -> list[PathRule]:
    unknown = sorted(set(document) - {"path", "name"})
    if unknown:
        raise BadRequest(
            f"failed to parse policy: unknown top-level key {unknown[0]!r}; "
            'a policy contains only path "PATTERN" { capabilities = [...] } blocks'
        )
    merged: dict[str, set[str]] = {}
    for pattern, body in _path_blocks(document.get("path", [])):
        capabilities = _rule_capabilities(pattern, body, text)
        merged.setdefault(_clean_pattern(pattern, text), set()).update(capabilities)
    return [PathRule(p, frozenset(c)) for p, c in merged.items()]


def _path_blocks(raw: object) -> Iterable[tuple[str, object]]:
    # HCL gives a list of one-key objects, and JSON usually one object of rules.
    blocks = raw if isinstance(raw, list) else [raw]
    for block in blocks:
        if not isinstance(block, dict):
            raise BadRequest(
                'failed to parse policy: expected path "PATTERN" { ... } blocks'
            )
        yield from block.items()


def _clean_pattern(pattern: str, text: str) -> str:
    cleaned = pattern.lstrip("/")
    star = cleaned.find("*")
    if star != -1 and star != len(cleaned) - 1:
        raise BadRequest(
            f"failed to parse policy: {_where(pattern, text)}: '*' is allowed only "
            "at the end of a path; use '+' to match one path segment"
        )
    return cleaned


def _rule_capabilities(pattern: str, body: object, text: str) -> set[str]:
    where = _where(pattern, text)
    if not isinstance(body, dict):
        raise BadRequest(f"failed to parse policy: {where}: expected a block")
    for key in body:
        if key in UNSUPPORTED_RULE_KEYS:
            raise BadRequest(
                f"failed to parse policy: {where}: {key!r} is not supported by "
                "MSSM; remove it or express the rule with capabilities only"
            )
        if key not in ("capabilities", "policy"):
            raise BadRequest(
                f"failed to parse policy: {where}: invalid key {key!r}; "
                "expected capabilities"
            )
    capabilities = set(_listed_capabilities(body.get("capabilities", []), where))
    legacy = body.get("policy")
    if legacy is not None:
        if legacy not in LEGACY_POLICY:
            raise BadRequest(
                f"failed to parse policy: {where}: invalid policy {legacy!r}; "
                f"expected one of {', '.join(LEGACY_POLICY)}"
            )
        capabilities |= LEGACY_POLICY[legacy]
    return capabilities


def _listed_capabilities(raw: object, where: str) -> list[str]:
    if not isinstance(raw, list):
        raise BadRequest(
            f"failed to parse policy: {where}: capabilities must be a list, "
            'e.g. ["read", "list"]'
        )
    for item in raw:
        if item not in CAPABILITIES:
            raise BadRequest(
                f"failed to parse policy: {where}: invalid capability "
                f"{item!r}; expected one of {', '.join(CAPABILITIES)}"
            )
    return list(raw)


def _where(pattern: str, text: str) -> str:
    """Name a rule by its pattern and, when found in text, its line."""
    needle = re.compile(r'(path\s*)?"' + re.escape(pattern) + '"')
    for number, line in enumerate(text.splitlines(), start=1):
        if needle.search(line):
            return f'path "{pattern}" (line {number})'
    return f'path "{pattern}"'


# -- matching ------------------------------------------------------------------


def _is_wildcard(pattern: str) -> bool:
    return pattern.endswith("*") or "+" in pattern.split("/")


def _priority(pattern: str) -> tuple[int, bool, int, int, str]:
    """Sort key of a pattern: a larger key wins over a smaller one.

    Vault's order: a pattern whose first wildcard comes later wins; one
    without a trailing '*' wins over one with it; fewer '+' segments win;
    a longer pattern wins; then the lexicographically larger one.
    """
    segments = pattern.split("/")
    plus_count = segments.count("+")
    positions = [len(pattern)]
    if pattern.endswith("*"):
        positions.append(len(pattern) - 1)
    offset = 0
    for segment in segments:
        if segment == "+":
            positions.append(offset)
        offset += len(segment) + 1
    return (
        min(positions),
        not pattern.endswith("*"),
        -plus_count,
        len(pattern),
        pattern,
    )


class _WildcardRule:
    def __init__(self, pattern: str, capabilities: frozenset[str]) -> None:
        self.pattern = pattern
        self.capabilities = capabilities
        self.priority = _priority(pattern)
        self._regex: re.Pattern | None = None
        self._prefix = ""
        if "+" in pattern.split("/"):
            self._regex = re.compile(_plus_regex(pattern), re.DOTALL)
        else:
            self._prefix = pattern[:-1]

    def matches(self, path: str) -> bool:
        if self._regex is not None:
            return self._regex.fullmatch(path) is not None
        return path.startswith(self._prefix)


def _plus_regex(pattern: str) -> str:
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    parts = [
        "[^/]*" if segment == "+" else re.escape(segment) for segment in body.split("/")
    ]
    return "/".join(parts) + (".*" if glob else "")


class ACL:
    """The merged rules of one set of policies, with a per-path cache."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        merged: dict[str, set[str]] = {}
        for policy in policies:
            for rule in policy.rules:
                merged.setdefault(rule.pattern, set()).update(rule.capabilities)
        self._exact = {
            pattern: frozenset(caps)
            for pattern, caps in merged.items()
            if not _is_wildcard(pattern)
        }
        wildcards = [
            _WildcardRule(pattern, frozenset(caps))
            for pattern, caps in merged.items()
            if _is_wildcard(pattern)
        ]
        self._wildcards = sorted(wildcards, key=lambda r: r.priority, reverse=True)
        self._cache: dict[str, frozenset[str]] = {}

    def capabilities(self, path: str) -> frozenset[str]:
        """Return the capabilities of the highest-priority rule matching path."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        found = self._lookup(path)
        if len(self._cache) >= ACL_CACHE_PATHS:
            self._cache.clear()
        self._cache[path] = found
        return found

    def _list_exact(self, path: str) -> frozenset[str] | None:
        # A LIST request path ends in "/"; as in Vault, an exact rule for the
        # path without that slash applies too, unless one with it exists.
        if not path.endswith("/") or path in self._exact:
            return None
        return self._exact.get(path[:-1])

    def _lookup(self, path: str) -> frozenset[str]:
        # An exact pattern outranks every wildcard that matches the same path.
        exact = self._exact.get(path)
        if exact is not None:
            return exact
        for rule in self._wildcards:
            if rule.matches(path):
                return rule.capabilities
        return frozenset()

    def decide(self, path: str, operation: str) -> Decision:
        capabilities = self._list_exact(path) if operation == LIST else None
        if capabilities is None:
            capabilities = self.capabilities(path)
        if "deny" in capabilities:
            return DENIED
        needed = OPERATION_CAPABILITY.get(operation, operation)
        return Decision(needed in capabilities, "sudo" in capabilities)


def effective_capabilities(acl: ACL, path: str) -> list[str]:
    """Capabilities as sys/capabilities reports them: sorted, or ["deny"]."""
    capabilities = acl.capabilities(path)
    if not capabilities or "deny" in capabilities:
        return ["deny"]
    return sorted(capabilities)


# -- the store -----------------------------------------------------------------


class PolicyStore:
    """ACL policies kept through the barrier under acl/<name>.

    NOTE: the policies and compiled matchers are cached per process. A
    change made by another node or worker is not seen until load() runs
    again in this process.
    """

    def __init__(self, storage: StorageView) -> None:
        self.storage = storage
        self._policies: dict[str, Policy] = {}
        self._acls: dict[tuple[str, ...], ACL] = {}

    async def load(self) -> None:
        """Read policies from storage after unseal, and create `default` once."""
        self._policies = {}
        self._acls = {}
        for key in await self.storage.list("acl/"):
            raw = await self.storage.get_json(f"acl/{key}")
            if raw is None:
                continue
            policy = Policy(
                name=raw["name"],
                text=raw["policy"],
                rules=parse_policy(raw["policy"]),
                version=raw.get("version", 1),
                modified=raw.get("modified", 0.0),
            )
            self._policies[policy.name] = policy
        if BUILTIN_DEFAULT not in self._policies:
            await self.put(BUILTIN_DEFAULT, DEFAULT_POLICY)
        logger.info("loaded %d ACL policies", len(self._policies))

    async def check(self, policies: list[str], path: str, operation: str) -> Decision:
        if BUILTIN_ROOT in policies:
            return ROOT_DECISION
        return self.acl(policies).decide(path, operation)

    def acl(self, policies: Iterable[str]) -> ACL:
        key = tuple(policies)
        acl = self._acls.get(key)
        if acl is None:
            found = [self._policies[n] for n in key if n in self._policies]
            acl = ACL(found)
            self._acls[key] = acl
        return acl

    def capabilities(self, policies: list[str], path: str) -> list[str]:
        if BUILTIN_ROOT in policies:
            return ["root"]
        return effective_capabilities(self.acl(policies), path)

    def get(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def exists(self, name: str) -> bool:
        return name == BUILTIN_ROOT or name in self._policies

    def names(self) -> list[str]:
        """Return the policy names sorted, with `root` last, as Vault lists them."""
        return sorted(self._policies) + [BUILTIN_ROOT]

    async def put(self, name: str, text: str, cas: int | None = None) -> Policy:
        name = normalize_name(name)
        if name == BUILTIN_ROOT:
            raise BadRequest('cannot update "root" policy')
        rules = parse_policy(text)
        current = self._policies.get(name)
        version = current.version if current else 0
        if cas is not None and cas != version:
            raise BadRequest(
                f"check-and-set parameter did not match the current version "
                f"{version} of policy {name!r}"
            )
        policy = Policy(name, text, rules, version + 1, time.time())
        await self.storage.put_json(f"acl/{name}", policy.to_dict())
        self._policies[name] = policy
        self._acls = {}
        logger.info("policy %s written (version %d)", name, policy.version)
        return policy

    async def delete(self, name: str) -> None:
        name = normalize_name(name)
        if name == BUILTIN_ROOT:
            raise BadRequest('cannot delete "root" policy')
        if name == BUILTIN_DEFAULT:
            raise BadRequest("cannot delete default policy")
        await self.storage.delete(f"acl/{name}")
        if self._policies.pop(name, None) is not None:
            self._acls = {}
            logger.info("policy %s deleted", name)
