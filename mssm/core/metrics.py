"""Prometheus metrics, as module-level objects in one registry.

The registry is private to MSSM so that tests starting several cores in one
process do not collide with the default global registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

requests_total = Counter(
    "mssm_requests",
    "Requests handled, by operation and HTTP status class.",
    ["operation", "status"],
    registry=REGISTRY,
)
request_seconds = Histogram(
    "mssm_request_duration_seconds",
    "Time from the request's arrival to its answer.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
    registry=REGISTRY,
)
sealed = Gauge(
    "mssm_core_sealed", "1 while the barrier is sealed, else 0.", registry=REGISTRY
)
unseal_failures = Counter(
    "mssm_unseal_failures",
    "Unseal attempts whose shares did not rebuild the key.",
    registry=REGISTRY,
)
audit_failures = Counter(
    "mssm_audit_failures",
    "Requests rejected because no audit device could record them.",
    registry=REGISTRY,
)

LEASE_STATES = ("creating", "active", "revoke_pending", "irrevocable")
leases = Gauge(
    "mssm_leases",
    "Leases held by the lease manager, by state.",
    ["state"],
    registry=REGISTRY,
)
lease_revocations = Counter(
    "mssm_lease_revocations",
    "Leases revoked and removed, by cause (expired, revoked, forced, token).",
    ["cause"],
    registry=REGISTRY,
)
lease_revocation_failures = Counter(
    "mssm_lease_revocation_failures",
    "Failed attempts to revoke a lease at its secrets engine.",
    registry=REGISTRY,
)
