"""Server-side figures from Linux ``/proc``: CPU seconds of a process tree, RSS per process.

CPU time charged to the server (utime + stime of the master and every descendant, sampled before
and after a run) is the steadiest figure on a shared machine: throughput moves with whatever else
runs, the CPU one operation costs barely does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    # After "pid (comm) ": state, ppid, ... utime is field 14 of stat(5), stime 15.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (gunicorn workers; their own children, if any)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parents.setdefault(stat[0], []).append(int(name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds spent so far by ``pid`` and all its descendants."""
    total = 0.0
    for member in [pid, *children(pid)]:
        stat = _stat(member)
        if stat is not None:
            total += stat[1]
    return total


@dataclass(frozen=True)
class Memory:
    rss: int  #: resident now, bytes
    peak: int  #: high-water mark since the process started (VmHWM), bytes


def memory(pid: int) -> Memory | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values.get("VmRSS", 0), values.get("VmHWM", 0))


def worker_memory(master: int) -> list[Memory]:
    """Memory of each worker of a pre-forking server (or of the one process itself)."""
    pids = children(master) or [master]
    return [m for m in (memory(pid) for pid in pids) if m is not None]
