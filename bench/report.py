"""Write BENCHMARKS.md, the raw figures as JSON, and the chart."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.floors import FloorResult
from bench.measure import Measurement
from bench.scaling import ScalePoint, UnsealPoint
from bench.servers import FLOOR, MSSM, OPENBAO
from bench.targets import TargetCheck, check_all, find

PROFILE_HEADING = "## Profile findings"
PROFILE_PLACEHOLDER = (
    "Left for people to fill in after profiling a run (for example with\n"
    "`py-spy record --pid PID` during `make bench`). The driver keeps this\n"
    "section when it rewrites the page.\n"
)
SYSTEM_NAMES = {MSSM: "MSSM", OPENBAO: "OpenBao", FLOOR: "floor"}


@dataclass
class RunRecord:
    plan: str
    command: str
    started: str
    duration_s: float
    machine: dict[str, str]
    results: list[Measurement] = field(default_factory=list)
    rsa_floor: FloorResult | None = None
    scale: list[ScalePoint] = field(default_factory=list)
    unseal: list[UnsealPoint] = field(default_factory=list)

    @property
    def targets(self) -> list[TargetCheck]:
        return check_all(self.results, self.rsa_floor, self.scale)


def write_json(record: RunRecord, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(record), indent=2) + "\n")


def read_json(path: Path) -> RunRecord:
    """Load a record that write_json wrote, to redraw the report without a run."""
    raw = json.loads(path.read_text())
    raw["results"] = [Measurement(**result) for result in raw["results"]]
    if raw["rsa_floor"] is not None:
        raw["rsa_floor"] = FloorResult(**raw["rsa_floor"])
    raw["scale"] = [
        ScalePoint(
            **point
            | {
                "kv_read": Measurement(**point["kv_read"]),
                "token_lookup": Measurement(**point["token_lookup"]),
            }
        )
        for point in raw["scale"]
    ]
    raw["unseal"] = [UnsealPoint(**point) for point in raw["unseal"]]
    return RunRecord(**raw)


def write_markdown(record: RunRecord, report: Path, chart: Path | None) -> None:
    profile = _existing_profile_section(report)
    sections = [
        _header(record),
        _targets(record.targets),
        _scenarios(record.results),
        _ratios(record.results),
        _library_floors(record),
        _scaling(record.scale),
        _unseal(record.unseal),
        _chart(report, chart),
        _method(),
        f"{PROFILE_HEADING}\n\n{profile}",
    ]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(section for section in sections if section))


def _existing_profile_section(report: Path) -> str:
    try:
        text = report.read_text()
    except OSError:
        return PROFILE_PLACEHOLDER
    _, found, rest = text.partition(PROFILE_HEADING + "\n")
    if not found:
        return PROFILE_PLACEHOLDER
    return rest.strip("\n") + "\n"


def _header(record: RunRecord) -> str:
    machine = record.machine
    rows = [
        ("Command", f"`{record.command}`"),
        ("Mode", record.plan),
        ("Started", record.started),
        ("Duration", f"{record.duration_s / 60:.1f} min"),
        ("CPU", f"{machine['cpu_model']}, {machine['cores']} cores"),
        ("Pinning", machine["pinning"]),
        ("Connections", "16 unless the table says otherwise; wrk with 1 thread"),
        ("Measured time", machine["timing"]),
        ("Versions", machine["versions"]),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (
        "# Benchmarks\n\n"
        "MSSM measured against OpenBao (the open-source Vault) and against the\n"
        "floor of this machine: a bare ASGI app on the same uvicorn settings, raw\n"
        "RSA signing with `cryptography`, and raw `CREATE ROLE` through psycopg.\n"
        "Regenerate with `make bench` (an estimated 20 minutes), `make\n"
        "bench-quick` (under 3 minutes) or `python -m bench.run --full` (adds\n"
        "1M secrets, an estimated 5 minutes more).\n\n"
        "## Run\n\n| | |\n|---|---|\n" + table + "\n"
    )


def _targets(checks: list[TargetCheck]) -> str:
    lines = ["## Targets", "", "| Target | Figure | Status |", "|---|---|---|"]
    for check in checks:
        lines.append(f"| {check.target} | {check.figure or '-'} | {check.status} |")
    return "\n".join(lines) + "\n"


def _ratio(numerator: float, denominator: float) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}"


def _scenarios(results: list[Measurement]) -> str:
    lines = [
        "## Scenarios",
        "",
        "CPU is the server's user plus system time per request, read from",
        "/proc/PID/stat before and after the measured run.",
        "",
        "| Scenario | Conns | Server | req/s | p50 ms | p99 ms | CPU ms/req | Notes |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for result in results:
        lines.append(_scenario_row(result))
    return "\n".join(lines) + "\n"


def _scenario_row(result: Measurement) -> str:
    system = SYSTEM_NAMES[result.system]
    head = f"| {result.title} | {result.connections} | {system} |"
    if not result.ok:
        return head + f" not available | | | | {_cell(result.reason)} |"

    if result.latency_ms:
        latency = f" {result.p50_ms:.2f} | {result.p99_ms:.2f} |"
    else:
        latency = " - | - |"
    return (
        f"{head} {result.requests_per_s:,.0f} |{latency}"
        f" {result.cpu_per_request_ms:.3f} | {_cell(result.note)} |"
    )


def _ratios(results: list[Measurement]) -> str:
    lines = [
        "## MSSM relative to OpenBao and to the floor",
        "",
        "Each figure is MSSM's divided by the other server's in the same",
        "scenario: above 1 is better for req/s, below 1 is better for latency",
        "and CPU per request.",
        "",
        "| Scenario | Conns | req/s vs OpenBao | p50 | p99 | CPU/req "
        "| req/s vs floor | p50 | p99 | CPU/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if result.system == MSSM:
            lines.append(_ratio_row(result, results))
    return "\n".join(lines) + "\n"


def _ratio_row(mssm: Measurement, results: list[Measurement]) -> str:
    head = f"| {mssm.title} | {mssm.connections} |"
    if not mssm.ok:
        return head + " not available | | | | | | | |"

    cells = []
    for system in (OPENBAO, FLOOR):
        other = find(results, mssm.scenario, system)
        if other is None:
            cells += ["-"] * 4
            continue
        cells += [
            _ratio(mssm.requests_per_s, other.requests_per_s),
            _ratio(mssm.p50_ms, other.p50_ms),
            _ratio(mssm.p99_ms, other.p99_ms),
            _ratio(mssm.cpu_per_request_ms, other.cpu_per_request_ms),
        ]
    return head + "".join(f" {cell} |" for cell in cells)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:160]


def _library_floors(record: RunRecord) -> str:
    lines = ["## Library floors", ""]
    if record.rsa_floor is not None:
        floor = record.rsa_floor
        lines.append(
            f"- RSA-2048 PKCS#1 v1.5 SHA-256 signing with `cryptography`, one "
            f"process per server core: {floor.rate:,.0f} signatures/s."
        )
    postgres = find(record.results, "database-creds", FLOOR)
    if postgres is not None:
        lines.append(
            "- `CREATE ROLE ... LOGIN PASSWORD ... VALID UNTIL` through psycopg "
            f"on {postgres.connections} connections: "
            f"{postgres.requests_per_s:,.0f} roles/s (only the creation is "
            "timed; the roles are dropped afterwards)."
        )
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def _scaling(points: list[ScalePoint]) -> str:
    if not points:
        return ""
    lines = [
        "## Scaling with stored secrets",
        "",
        "KV reads pick a random key among all stored secrets.",
        "",
        "| Server | Secrets | Filled by | Fill s | Read req/s | Read p50 ms "
        "| Read p99 ms | Lookup p50 ms | Lookup p99 ms | RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in points:
        read, lookup = point.kv_read, point.token_lookup
        lines.append(
            f"| {SYSTEM_NAMES[point.system]} | {point.size:,} | {point.fill_method} "
            f"| {point.fill_seconds:.1f} | {_rate(read)} | {_p(read, 'p50')} "
            f"| {_p(read, 'p99')} | {_p(lookup, 'p50')} | {_p(lookup, 'p99')} "
            f"| {point.rss_bytes / 10**6:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _rate(result: Measurement) -> str:
    return f"{result.requests_per_s:,.0f}" if result.ok else "n/a"


def _p(result: Measurement, percentile: str) -> str:
    return f"{result.latency_ms[percentile]:.2f}" if result.ok else "n/a"


def _unseal(points: list[UnsealPoint]) -> str:
    if not points:
        return ""
    lines = [
        "## Unseal with live leases",
        "",
        "MSSM is restarted, then timed from `PUT sys/unseal` until `sys/health`",
        "returns 200. The leases come from a database role whose statements are",
        "`SELECT 1`, so PostgreSQL holds no roles for them.",
        "",
        "| Server | Leases | Lease fill s | Unseal s | RSS MB | Notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for point in points:
        lines.append(
            f"| {SYSTEM_NAMES[point.system]} | {point.leases:,} "
            f"| {point.fill_seconds:.1f} | {point.unseal_seconds:.2f} "
            f"| {point.rss_bytes / 10**6:.0f} | {_cell(point.reason)} |"
        )
    return "\n".join(lines) + "\n"


def _chart(report: Path, chart: Path | None) -> str:
    if chart is None or not chart.exists():
        return ""
    relative = os.path.relpath(chart, report.parent)
    return f"## Chart\n\n![Throughput and latency per scenario]({relative})\n"


def _method() -> str:
    return (
        "## Method\n\n"
        "- Each server runs pinned to one core and wrk to the other, with\n"
        "  `taskset`; OpenBao's Go runtime therefore uses one core too.\n"
        "- Every scenario has the file audit device on, except the row marked\n"
        "  no audit. Each figure follows the warm-up given under Measured time\n"
        "  (none in quick mode); scaling rows warm up for at least 2 s.\n"
        "- A scenario whose endpoint is missing (404 or 405 on a probe) or\n"
        "  whose error rate is over 1% is shown as not available.\n"
        "- OpenBao has no JWT endpoints: its JWT rows are a transit sign or\n"
        "  verify of the same `header.payload` input, with the JWS signature\n"
        "  format (PKCS#1 v1.5 for RS256, JWS marshaling for ES256).\n"
        "- The KV write row runs OpenBao on Raft storage, which writes to disk\n"
        "  as MSSM's SQLite does; OpenBao 2.7 has no file storage backend.\n"
        "- The floor returns the same JSON body for every request, as large\n"
        "  as MSSM's KV read response. Requests of the same method and\n"
        "  connection count share one floor measurement.\n"
        "- The machine is shared with other work, so figures vary between\n"
        "  runs by several percent; compare ratios from the same run.\n"
    )


def write_chart(results: list[Measurement], path: Path) -> Path | None:
    """Draw throughput, and p50 inside p99, per scenario and server."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    scenarios = list(dict.fromkeys(result.scenario for result in results))
    systems = [s for s in (MSSM, OPENBAO, FLOOR) if any(r.system == s for r in results)]
    if not scenarios or not systems:
        return None

    figure, (top, bottom) = pyplot.subplots(
        2, 1, figsize=(max(8, len(scenarios) * 0.9), 9), sharex=True
    )
    width = 0.8 / len(systems)
    for index, system in enumerate(systems):
        offsets = [
            x + (index - (len(systems) - 1) / 2) * width for x in range(len(scenarios))
        ]
        rows = [find(results, scenario, system) for scenario in scenarios]
        color = f"C{index}"
        name = SYSTEM_NAMES[system]
        top.bar(
            offsets,
            [r.requests_per_s if r else 0 for r in rows],
            width,
            label=name,
            color=color,
        )
        bottom.bar(
            offsets,
            [r.p99_ms if r else 0 for r in rows],
            width,
            color=color,
            alpha=0.35,
            label=f"{name} p99",
        )
        bottom.bar(
            offsets,
            [r.p50_ms if r else 0 for r in rows],
            width,
            color=color,
            label=f"{name} p50",
        )

    top.set_yscale("log")
    top.set_ylabel("requests per second (log)")
    top.legend()
    bottom.set_yscale("log")
    bottom.set_ylabel("latency ms (log): p50 solid, p99 light")
    bottom.set_xticks(range(len(scenarios)), scenarios, rotation=45, ha="right")
    bottom.legend(ncol=len(systems), fontsize="small")
    figure.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
