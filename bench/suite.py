"""Run every scenario against each server in turn and collect the figures."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import fixtures, floors
from bench.api import Unavailable
from bench.measure import UNAVAILABLE, Measurement, Timing, measure
from bench.plans import Plan
from bench.process import ServerError
from bench.scenarios import HTTP_FLOOR, KV_KEYS, Scenario
from bench.servers import FLOOR, MSSM, OPENBAO, TLS, Fleet, VaultServer
from bench.wrk import RequestSpec

logger = logging.getLogger("bench.suite")


@dataclass
class Progress:
    """Prints one line per finished measurement, with the elapsed time."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def report(self, result: Measurement) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        if result.ok:
            figures = f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.2f} ms"
        else:
            figures = f"not available: {result.reason}"
        print(
            f"[{self.done:>3}/{self.total}] {elapsed // 60:.0f}:{elapsed % 60:04.1f} "
            f"{result.scenario} @{result.connections} {result.system}: {figures}",
            flush=True,
        )


class Suite:
    def __init__(
        self, fleet: Fleet, plan: Plan, script_dir: Path, scenarios: list[Scenario]
    ) -> None:
        self.fleet = fleet
        self.plan = plan
        self.script_dir = script_dir
        self.scenarios = scenarios
        self.results: list[Measurement] = []
        self.progress = Progress(total=len(scenarios) * len(plan.systems))
        self._floor_cache: dict[tuple[str, int, bool], Measurement] = {}
        self._postgres_floor: Measurement | None = None
        self._kv_body_sizes: dict[str, int] = {}

    @property
    def timing(self) -> Timing:
        return self.plan.timing

    def run(self) -> list[Measurement]:
        for scenario in self.scenarios:
            for system in self.plan.systems:
                result = self.run_one(scenario, system)
                self.results.append(result)
                self.progress.report(result)
        return self.results

    def run_one(self, scenario: Scenario, system: str) -> Measurement:
        result = Measurement(
            scenario=scenario.key,
            title=scenario.title,
            system=system,
            connections=scenario.connections,
        )
        if system == FLOOR:
            return self._floor(scenario, result)
        if system == OPENBAO:
            result.note = scenario.openbao_note
        variant = scenario.openbao_variant if system == OPENBAO else ""
        return self._vault(scenario, result, variant or scenario.variant)

    def _vault(
        self, scenario: Scenario, result: Measurement, variant: str
    ) -> Measurement:
        try:
            server = self.fleet.get(result.system, variant)
            if not isinstance(server, VaultServer):
                raise ServerError(f"{server.name} does not serve the Vault API")
            server.check_running()
            self._record_kv_size(server)
            spec = scenario.build(server)
        except (ServerError, Unavailable) as exc:
            return _unavailable(result, str(exc))
        except Exception as exc:
            # A scenario the server cannot set up (an unexpected response
            # shape, say) must not end the run for the other scenarios.
            logger.exception("setting up %s on %s failed", scenario.key, result.system)
            return _unavailable(result, f"setup failed: {exc!r}")

        audit_before = server.audit_log_size()
        measure(
            server, spec, result, self.timing, self.fleet.cores.load, self.script_dir
        )
        if server.audit and result.ok and server.audit_log_size() <= audit_before:
            # Without this check a server whose audit device silently writes
            # nothing would be compared with OpenBao's audited figures.
            result.note = _join(result.note, "audit log did not grow during the run")
        return result

    def _record_kv_size(self, server: VaultServer) -> None:
        """Size the floor's body like MSSM's KV read, or OpenBao's without MSSM."""
        if server.system in self._kv_body_sizes:
            return
        try:
            size = fixtures.kv_read_size(server)
        except Unavailable as exc:
            logger.warning("cannot size the floor body from %s: %s", server.name, exc)
            size = 0
        self._kv_body_sizes[server.system] = size
        if size and (server.system == MSSM or not self.fleet.floor_body_size):
            self.fleet.floor_body_size = size

    def _floor(self, scenario: Scenario, result: Measurement) -> Measurement:
        if scenario.floor != HTTP_FLOOR:
            return self._postgres(result)

        spec = self._floor_spec(scenario)
        tls = scenario.variant == TLS
        key = (spec.method, scenario.connections, tls)
        cached = self._floor_cache.get(key)
        if cached is not None:
            return _copy_for(cached, result)

        try:
            server = self.fleet.get(FLOOR, scenario.variant)
        except ServerError as exc:
            return _unavailable(result, str(exc))
        measured = measure(
            server, spec, result, self.timing, self.fleet.cores.load, self.script_dir
        )
        self._floor_cache[key] = measured
        return measured

    def _floor_spec(self, scenario: Scenario) -> RequestSpec:
        """Return the floor's request, with the scenario's method and a small body."""
        if scenario.method == "GET":
            return RequestSpec("GET", "/v1/secret/data/bench/", key_count=KV_KEYS)
        body = f'{{"data":{{"value":"{fixtures.SECRET_VALUE}"}}}}'
        return RequestSpec(scenario.method, "/v1/floor", body=body)

    def _postgres(self, result: Measurement) -> Measurement:
        if self._postgres_floor is None:
            seconds = self.timing.duration_s
            cores = (
                [self.fleet.cores.server] if self.fleet.cores.server is not None else []
            )
            try:
                floor = floors.measure("postgres", cores, seconds, result.connections)
            except RuntimeError as exc:
                result.status = UNAVAILABLE
                result.reason = str(exc)
                self._postgres_floor = result
                return result
            result.note = "raw psycopg CREATE ROLE loop"
            result.requests = floor.operations
            result.seconds = floor.seconds
            result.requests_per_s = floor.rate
            result.cpu_seconds = floor.cpu_seconds
            self._postgres_floor = result
        return _copy_for(self._postgres_floor, result)


def _unavailable(result: Measurement, reason: str) -> Measurement:
    result.status = UNAVAILABLE
    result.reason = reason.splitlines()[0] if reason else "unknown error"
    return result


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _copy_for(source: Measurement, target: Measurement) -> Measurement:
    """Reuse a floor measurement for another scenario of the same shape."""
    copied = Measurement(**{**source.__dict__, "scenario": target.scenario})
    copied.title = target.title
    return copied
