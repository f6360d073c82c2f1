"""CPU time and resident memory of a server process and its children, from /proc.

A server may fork workers, so both figures cover the whole process tree under
the pid that the driver started.
"""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields of /proc/PID/stat after the command name, counted from 0 at the state.
_PPID = 1
_UTIME = 11
_STIME = 12


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None

    # The command name is in parentheses and may contain spaces or ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """Return pid and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[_PPID]), []).append(int(entry.name))

    tree = [pid]
    for parent in tree:
        tree.extend(children.get(parent, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """Return user plus system CPU seconds used so far by the process tree."""
    ticks = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            ticks += int(fields[_UTIME]) + int(fields[_STIME])
    return ticks / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Return the summed VmRSS of the process tree, in bytes."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
