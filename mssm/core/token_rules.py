"""The rules of token creation and renewal, free of storage and clocks.

They follow Vault's token store with one deliberate difference: a child
never gets a policy its parent lacks (unless the parent holds root), even
through a role's allowed_policies, where Vault lets a role widen a
token's policies. A role can only narrow. A TTL is capped
by the explicit max TTL, the role's max TTL and the token mount's max TTL.
A periodic token renews to its period, ignoring the requested increment, and
only its explicit max TTL ends it. Functions that depend on time take `now`
as a parameter.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from fnmatch import fnmatchcase
from typing import Any

from mssm.core.durations import format_go_duration
from mssm.core.errors import BadRequest

ROOT_POLICY = "root"
DEFAULT_POLICY = "default"
_DISPLAY_NAME_INVALID = re.compile(r"[^a-zA-Z0-9-]")


@dataclass
class TokenLimits:
    """The token mount's TTLs after tuning: seconds, never zero."""

    default_ttl: int
    max_ttl: int


@dataclass
class TokenRole:
    name: str
    allowed_policies: list[str] = field(default_factory=list)
    allowed_policies_glob: list[str] = field(default_factory=list)
    disallowed_policies: list[str] = field(default_factory=list)
    disallowed_policies_glob: list[str] = field(default_factory=list)
    orphan: bool = False
    renewable: bool = True
    path_suffix: str = ""
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_period: int = 0
    token_explicit_max_ttl: int = 0
    token_no_default_policy: bool = False
    token_type: str = "default-service"  # noqa: S105 - a type name
    allowed_entity_aliases: list[str] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenRole:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CreateRequest:
    """A token create request after field parsing, with TTLs in seconds."""

    policies: list[str] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    display_name: str = ""
    ttl: int = 0
    explicit_max_ttl: int = 0
    period: int = 0
    num_uses: int = 0
    renewable: bool = True
    no_parent: bool = False
    no_default_policy: bool = False
    orphan_endpoint: bool = False
    token_type: str = ""


@dataclass
class TokenTerms:
    """The settings and warnings create_terms decides for a new token."""

    policies: list[str]
    ttl: int
    explicit_max_ttl: int
    period: int
    renewable: bool
    orphan: bool
    display_name: str
    warnings: list[str] = field(default_factory=list)


def create_terms(
    request: CreateRequest,
    parent_policies: list[str],
    parent_sudo: bool,
    role: TokenRole | None,
    limits: TokenLimits,
) -> TokenTerms:
    """Decide policies, TTLs and parentage of a new token, or raise BadRequest."""
    _check_request(request, parent_sudo, role)
    policies = _policies(request, parent_policies, role)
    explicit_max = _explicit_max(request, role)
    period = role.token_period if role and role.token_period else request.period
    max_ttl = _max_ttl(role, limits)
    warnings: list[str] = []
    ttl = _initial_ttl(request, role, limits, policies, period, max_ttl, warnings)
    if explicit_max and (ttl == 0 or ttl > explicit_max):
        if ttl:
            warnings.append(_ttl_capped(ttl, explicit_max))
        ttl = explicit_max
    renewable = request.renewable and (role.renewable if role else True)
    return TokenTerms(
        policies=policies,
        ttl=ttl,
        explicit_max_ttl=explicit_max,
        period=period,
        renewable=renewable and ttl > 0,
        orphan=_orphan(request, role),
        display_name=display_name(request.display_name),
        warnings=warnings,
    )


def _check_request(
    request: CreateRequest, parent_sudo: bool, role: TokenRole | None
) -> None:
    if request.num_uses < 0:
        raise BadRequest("number of uses cannot be negative")
    if request.token_type not in ("", "service", "default", "default-service"):
        raise BadRequest(
            f"invalid token type {request.token_type!r}: MSSM issues service "
            "tokens only"
        )
    if request.period and not (role and role.token_period) and not parent_sudo:
        raise BadRequest("root or sudo privileges required to create periodic token")
    if request.no_parent and not parent_sudo:
        raise BadRequest("root or sudo privileges required to create orphan token")


def _policies(
    request: CreateRequest, parent_policies: list[str], role: TokenRole | None
) -> list[str]:
    requested = request.policies
    if role is not None and requested is None and role.allowed_policies:
        requested = list(role.allowed_policies)
    if requested is None:
        requested = [p for p in parent_policies if p != DEFAULT_POLICY]
    no_default = request.no_default_policy or bool(
        role and role.token_no_default_policy
    )
    chosen = _sanitize(requested, add_default=not no_default)
    if role is not None:
        _check_role_policies(chosen, role, parent_policies)
    elif ROOT_POLICY not in parent_policies:
        _check_subset(chosen, parent_policies)
    return chosen


def _sanitize(policies: list[str], add_default: bool) -> list[str]:
    cleaned = {p.strip().lower() for p in policies if p.strip()}
    if ROOT_POLICY in cleaned:
        cleaned.discard(DEFAULT_POLICY)
    elif add_default:
        cleaned.add(DEFAULT_POLICY)
    return sorted(cleaned)


def _check_subset(chosen: list[str], parent_policies: list[str]) -> None:
    # `default` holds only self-service rules, so any parent may grant it.
    missing = [p for p in chosen if p != DEFAULT_POLICY and p not in parent_policies]
    if missing:
        raise BadRequest(
            "child policies must be a subset of the parent's policies; the "
            f"parent does not hold: {', '.join(missing)}"
        )


def _check_role_policies(
    chosen: list[str], role: TokenRole, parent_policies: list[str]
) -> None:
    for policy in chosen:
        if policy in role.disallowed_policies or any(
            fnmatchcase(policy, g) for g in role.disallowed_policies_glob
        ):
            raise BadRequest(
                f"token policy {policy!r} is disallowed by role {role.name!r}"
            )
    if not (role.allowed_policies or role.allowed_policies_glob):
        if ROOT_POLICY not in parent_policies:
            _check_subset(chosen, parent_policies)
        return
    allowed = [
        p
        for p in chosen
        if p == DEFAULT_POLICY
        or p in role.allowed_policies
        or any(fnmatchcase(p, g) for g in role.allowed_policies_glob)
    ]
    if len(allowed) != len(chosen):
        outside = sorted(set(chosen) - set(allowed))
        raise BadRequest(
            f"token policies {chosen} must be a subset of role {role.name!r} "
            f"allowed policies {role.allowed_policies} or glob policies "
            f"{role.allowed_policies_glob}; not allowed: {', '.join(outside)}"
        )
    if ROOT_POLICY not in parent_policies:
        _check_subset(chosen, parent_policies)


def _explicit_max(request: CreateRequest, role: TokenRole | None) -> int:
    explicit_max = request.explicit_max_ttl
    if role and role.token_explicit_max_ttl:
        if not explicit_max or role.token_explicit_max_ttl < explicit_max:
            explicit_max = role.token_explicit_max_ttl
    return explicit_max


def _max_ttl(role: TokenRole | None, limits: TokenLimits) -> int:
    if role and role.token_max_ttl:
        return min(role.token_max_ttl, limits.max_ttl)
    return limits.max_ttl


def _initial_ttl(
    request: CreateRequest,
    role: TokenRole | None,
    limits: TokenLimits,
    policies: list[str],
    period: int,
    max_ttl: int,
    warnings: list[str],
) -> int:
    if period:
        if period > max_ttl:
            warnings.append(_period_capped(period, max_ttl))
            return max_ttl
        return period
    ttl = request.ttl or (role.token_ttl if role else 0)
    if not ttl:
        # A root token asked for with no TTL never expires, as in Vault.
        if ROOT_POLICY in policies:
            return 0
        ttl = limits.default_ttl
    if ttl > max_ttl:
        warnings.append(_ttl_capped(ttl, max_ttl))
        return max_ttl
    return ttl


def _orphan(request: CreateRequest, role: TokenRole | None) -> bool:
    return request.orphan_endpoint or request.no_parent or bool(role and role.orphan)


def display_name(requested: str) -> str:
    if not requested:
        return "token"
    return "token-" + _DISPLAY_NAME_INVALID.sub("-", requested.strip()).lower()


@dataclass
class RenewalTerms:
    ttl: int
    warnings: list[str]


def renew_terms(
    *,
    creation_time: float,
    current_ttl: int,
    period: int,
    explicit_max_ttl: int,
    increment: int,
    role: TokenRole | None,
    limits: TokenLimits,
    now: float,
) -> RenewalTerms:
    """Return the TTL a renewal grants, counted from now.

    A periodic token gets its period (the role's current one if it has a
    role), capped by the mount's max TTL; `increment` is ignored. Any other
    token gets `increment`, or its current TTL when increment is 0, capped
    so that it ends no later than creation time plus the max TTL. The
    explicit max TTL, counted from creation, caps both.
    """
    warnings: list[str] = []
    max_ttl = _max_ttl(role, limits)
    effective_period = role.token_period if role and role.token_period else period
    if effective_period:
        ttl = effective_period
        if ttl > max_ttl:
            warnings.append(_period_capped(ttl, max_ttl))
            ttl = max_ttl
    else:
        wanted = increment or current_ttl or limits.default_ttl
        remaining = _remaining(creation_time, max_ttl, now)
        ttl = wanted
        if wanted > remaining:
            warnings.append(_ttl_capped(wanted, remaining))
            ttl = remaining
    if explicit_max_ttl:
        remaining = _remaining(creation_time, explicit_max_ttl, now)
        if ttl > remaining:
            warnings.append(_ttl_capped(ttl, remaining))
            ttl = remaining
    return RenewalTerms(ttl, warnings)


def _remaining(creation_time: float, max_ttl: int, now: float) -> int:
    return max(0, int(creation_time + max_ttl - now))


def _ttl_capped(ttl: int, maximum: int) -> str:
    return (
        f'TTL of "{format_go_duration(ttl)}" exceeded the effective max_ttl of '
        f'"{format_go_duration(maximum)}"; TTL value is capped accordingly'
    )


def _period_capped(period: int, maximum: int) -> str:
    return (
        f'period of "{format_go_duration(period)}" exceeded the effective max_ttl '
        f'of "{format_go_duration(maximum)}"; period value is capped accordingly'
    )
