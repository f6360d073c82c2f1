"""Run modes: the scenarios, data sizes and durations of each."""

from __future__ import annotations

from dataclasses import dataclass

from bench.measure import Timing
from bench.servers import FLOOR, MSSM, OPENBAO


@dataclass(frozen=True)
class Plan:
    name: str
    timing: Timing
    systems: tuple[str, ...] = (MSSM, OPENBAO, FLOOR)
    # None runs every scenario.
    scenario_keys: tuple[str, ...] | None = None
    # Stored-secret counts for the scaling section; empty skips it.
    scale_sizes: tuple[int, ...] = ()
    scale_systems: tuple[str, ...] = (MSSM,)
    # Live leases for the unseal-time measurement; 0 skips it.
    lease_count: int = 0
    # Seconds for each library floor (RSA signing, CREATE ROLE); 0 skips them.
    library_floor_s: float = 0.0


SMOKE = Plan(
    name="smoke",
    timing=Timing(duration_s=1, warmup_s=0),
    systems=(MSSM, FLOOR),
    scenario_keys=("kv-read",),
)

QUICK = Plan(
    name="quick",
    # No warm-up, to stay under 3 minutes. Each server has already handled
    # the scenario's probe request and its setup calls.
    timing=Timing(duration_s=2, warmup_s=0),
    scale_sizes=(1_000, 10_000),
    lease_count=10_000,
    library_floor_s=2,
)

STANDARD = Plan(
    name="standard",
    timing=Timing(duration_s=10, warmup_s=2),
    scale_sizes=(1_000, 100_000),
    scale_systems=(MSSM, OPENBAO),
    lease_count=100_000,
    library_floor_s=5,
)

FULL = Plan(
    name="full",
    timing=STANDARD.timing,
    scale_sizes=(1_000, 100_000, 1_000_000),
    scale_systems=(MSSM, OPENBAO),
    lease_count=100_000,
    library_floor_s=5,
)

PLANS = {plan.name: plan for plan in (SMOKE, QUICK, STANDARD, FULL)}
