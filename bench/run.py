"""The benchmark driver: MSSM against OpenBao and the machine's floor.

    python -m bench.run            # standard run, an estimated 20 minutes
    python -m bench.run --quick    # shorter runs and smaller data, < 3 minutes
    python -m bench.run --full     # standard plus the 1M-secret step
    python -m bench.run --smoke    # 1-second KV read on MSSM and the floor

It writes BENCHMARKS.md at the repository root and results.json and
chart.png under bench/results/, or where --report and --results point.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import fixtures, floors, report
from bench.plans import FULL, PLANS, QUICK, SMOKE, STANDARD, Plan
from bench.process import REPO_ROOT, VENV_BIN
from bench.scaling import run_scaling, run_unseal
from bench.scenarios import POSTGRES_FLOOR, Scenario, all_scenarios
from bench.servers import FLOOR, MSSM, OPENBAO, Cores, Fleet
from bench.suite import Suite
from bench.wrk import WrkError, ensure_wrk

logger = logging.getLogger("bench")

DEFAULT_REPORT = REPO_ROOT / "BENCHMARKS.md"
DEFAULT_RESULTS = REPO_ROOT / "bench" / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short run, < 3 minutes")
    mode.add_argument("--full", action="store_true", help="add the 1M-secret step")
    mode.add_argument(
        "--smoke", action="store_true", help="1-second KV read, MSSM and floor only"
    )

    parser.add_argument(
        "--report", type=Path, default=DEFAULT_REPORT, help="Markdown report path"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="directory for results.json and chart.png",
    )

    parser.add_argument(
        "--scenarios", default="", help="comma-separated scenario keys to run"
    )
    parser.add_argument(
        "--systems",
        default="",
        help="comma-separated servers to measure: mssm, openbao, floor",
    )
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep server configs, logs and data under /tmp",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report and chart from results.json without measuring",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def choose_plan(args: argparse.Namespace) -> Plan:
    plan = STANDARD
    if args.smoke:
        plan = SMOKE
    elif args.quick:
        plan = QUICK
    elif args.full:
        plan = FULL
    if not args.systems:
        return plan

    systems = tuple(name for name in args.systems.split(",") if name)
    unknown = sorted(set(systems) - {MSSM, OPENBAO, FLOOR})
    if unknown:
        raise SystemExit(
            f"unknown server {', '.join(unknown)}; choose from mssm, openbao, floor"
        )
    scale_systems = tuple(s for s in plan.scale_systems if s in systems)
    return dataclasses.replace(plan, systems=systems, scale_systems=scale_systems)


def select_scenarios(plan: Plan, keys: str) -> list[Scenario]:
    requested = [key for key in keys.split(",") if key] or plan.scenario_keys
    scenarios = all_scenarios()
    if requested is None:
        return scenarios

    known = {scenario.key for scenario in scenarios}
    unknown = sorted(set(requested) - known)
    if unknown:
        choices = ", ".join(sorted(known))
        raise SystemExit(
            f"unknown scenario {', '.join(unknown)}; choose from {choices}"
        )
    return [scenario for scenario in scenarios if scenario.key in requested]


def machine_info(plan: Plan, cores: Cores) -> dict[str, str]:
    if cores.server is None:
        pinning = "none: fewer than 2 cores available"
    else:
        pinning = f"server on core {cores.server}, wrk on core {cores.load}"
    timing = plan.timing
    return {
        "cpu_model": _cpu_model(),
        "cores": str(os.cpu_count()),
        "pinning": pinning,
        "timing": f"{timing.warmup_s:g} s warm-up, then {timing.duration_s:g} s",
        "versions": _versions(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _first_line(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    output = (completed.stdout or completed.stderr).strip()
    return output.splitlines()[0] if output else "unknown"


def _versions() -> str:
    commit = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    changed = _first_line(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "mssm"]
    )
    if changed != "unknown":
        # The figures then come from code that no commit records.
        commit += " with uncommitted changes"
    openbao = _first_line([str(VENV_BIN / "bao"), "version"]).split(" (")[0]
    wrk = _first_line(["wrk", "--version"]).split(" [")[0]
    return f"MSSM {commit}, {openbao}, {wrk}, Python {platform.python_version()}"


def _uses_postgres(plan: Plan, scenarios: list[Scenario]) -> bool:
    if plan.lease_count and MSSM in plan.systems:
        return True
    return any(scenario.floor == POSTGRES_FLOOR for scenario in scenarios)


def execute(
    plan: Plan, scenarios: list[Scenario], record: report.RunRecord, fleet: Fleet
) -> None:
    """Run every part of the plan, filling record as each part finishes."""
    record.results = Suite(fleet, plan, fleet.workdir, scenarios).run()

    if plan.library_floor_s:
        cores = [fleet.cores.server] if fleet.cores.server is not None else []
        print("floor: RSA-2048 signing with cryptography", flush=True)
        record.rsa_floor = floors.measure("rsa", cores, plan.library_floor_s)
    if plan.scale_sizes:
        record.scale = run_scaling(fleet, plan, fleet.workdir)
    if plan.lease_count and MSSM in plan.systems:
        record.unseal = run_unseal(fleet, plan)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.report_only:
        record = report.read_json(args.results / "results.json")
        write_reports(record, args.report, args.results)
        return 0

    plan = choose_plan(args)
    scenarios = select_scenarios(plan, args.scenarios)
    try:
        ensure_wrk()
    except WrkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # SIGTERM becomes SystemExit, so the servers are still stopped below.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    cores = Cores.detect()
    if cores.load is not None:
        # Fills and probes from this process stay off the server's core.
        os.sched_setaffinity(0, {cores.load})
    workdir = Path(tempfile.mkdtemp(prefix="mssm-bench-"))
    fleet = Fleet(workdir, cores)
    record = report.RunRecord(
        plan=plan.name,
        command=" ".join(["python -m bench.run", *argv]),
        started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        duration_s=0.0,
        machine=machine_info(plan, cores),
    )
    print(f"bench: {plan.name} run, {len(scenarios)} scenarios, work dir {workdir}")

    started = time.monotonic()
    uses_postgres = _uses_postgres(plan, scenarios)
    try:
        if uses_postgres:
            fixtures.drop_bench_roles()
        execute(plan, scenarios, record, fleet)
    finally:
        fleet.stop_all()
        if uses_postgres:
            fixtures.drop_bench_roles()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    record.duration_s = time.monotonic() - started

    report.write_json(record, args.results / "results.json")
    write_reports(record, args.report, args.results)
    return 0


def write_reports(record: report.RunRecord, report_path: Path, results: Path) -> None:
    chart = report.write_chart(record.results, results / "chart.png")
    report.write_markdown(record, report_path, chart)
    _print_targets(record)
    minutes = record.duration_s / 60
    print(f"bench: wrote {report_path} ({record.plan} run of {minutes:.1f} min)")


def _print_targets(record: report.RunRecord) -> None:
    for check in record.targets:
        print(f"target {check.status:>12}: {check.target} {check.figure}")


__all__ = ["main", "PLANS", "FULL", "QUICK", "SMOKE", "STANDARD"]

if __name__ == "__main__":
    sys.exit(main())
