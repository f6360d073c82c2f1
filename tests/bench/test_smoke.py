"""A seconds-long run of the benchmark driver, so CI notices when it breaks.

The run starts a real MSSM server and the floor server and loads each with
wrk for one second. The test checks that the report has figures, not what
they are.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.wrk import WrkError, ensure_wrk

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_S = 240


def _require_wrk() -> None:
    try:
        ensure_wrk()
    except WrkError as exc:
        pytest.fail(f"the benchmark smoke test needs wrk: {exc}")


def _run_driver(command: list[str]) -> tuple[int, str]:
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the driver stop the servers it started.
        process.terminate()
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the smoke run took over {SMOKE_TIMEOUT_S} s:\n{output}")
    return process.returncode, output


def _table_row(report: str, scenario: str, server: str) -> list[str]:
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[:1] == [scenario] and len(cells) > 3 and cells[2] == server:
            return cells
    raise AssertionError(f"no {scenario!r} row for {server} in the report:\n{report}")


def _throughput(cells: list[str]) -> float:
    try:
        return float(cells[3].replace(",", ""))
    except ValueError:
        raise AssertionError(f"the row has no throughput: {cells}") from None


def test_smoke_run_reports_kv_read(tmp_path: Path) -> None:
    _require_wrk()
    report_path = tmp_path / "BENCHMARKS.md"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--smoke",
        "--report",
        str(report_path),
        "--results",
        str(tmp_path / "results"),
    ]

    returncode, output = _run_driver(command)

    assert returncode == 0, output
    report = report_path.read_text()
    mssm = _table_row(report, "KV v2 read", "MSSM")
    floor = _table_row(report, "KV v2 read", "floor")
    assert _throughput(mssm) > 0, mssm
    assert _throughput(floor) > 0, floor
    assert (tmp_path / "results" / "results.json").exists()
