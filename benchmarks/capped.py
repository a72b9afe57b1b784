"""Run a benchmark worker under a memory cap and a wall-time cap enforced by the parent.

The parent polls the resident memory of the child and of all its descendants (VmRSS from /proc) every
`poll_s` seconds and kills the child's whole process group once the sum passes the cap, or once the wall
time passes its cap: the machine must never swap or meet the kernel's OOM killer, and a run that would
take too long is stopped and reported, not waited for. Standard library only (runs anywhere on Linux).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
OK, MEMORY_CAP, TIME_CAP, FAILED = "ok", "memory cap", "time cap", "failed"


@dataclass(frozen=True)
class Outcome:
    """How one capped run ended: `status` one of ok / memory cap / time cap / failed."""

    status: str
    seconds: float  # wall seconds until it ended or was killed
    peak_mb: float  # the largest sampled resident memory of the process tree, MiB
    returncode: int | None

    def label(self, memory_cap_mb: float, time_cap_s: float) -> str:
        """What a report shows for this run."""
        if self.status == MEMORY_CAP:
            return f"out of memory (> {memory_cap_mb / 1024:g} GiB cap)"
        if self.status == TIME_CAP:
            return f"past the time cap ({time_cap_s:g} s)"
        if self.status == FAILED:
            return f"failed (exit status {self.returncode})"
        return OK


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now (from /proc/<pid>/stat)."""
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, stack = set(), [pid]
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, []))
    return found


def status_mb(pid: int | str, field: str) -> float:
    """One memory field of /proc/<pid>/status (VmRSS, VmHWM, ...), MiB; 0 for a process that has ended
    or holds no memory (e.g. a zombie)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """VmRSS of one process, MiB (0 for a process that has ended or holds no memory, e.g. a zombie)."""
    return status_mb(pid, "VmRSS")


def current_rss_mb() -> float:
    """This process's resident memory now (VmRSS), MiB."""
    return status_mb("self", "VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM, its own address space's high-water mark), MiB.

    Not `ru_maxrss`: Linux carries the parent's high-water mark across fork and exec into the child's
    `ru_maxrss`, so a worker started by a driver that had reached 1.4 GB would report at least 1.4 GB
    however little it used itself."""
    return status_mb("self", "VmHWM")


def tree_rss_mb(pid: int) -> float:
    """The resident memory of `pid` and all its descendants, MiB."""
    return sum(rss_mb(p) for p in descendants(pid))


def run_capped(
    command: Sequence[str],
    memory_cap_mb: float,
    time_cap_s: float,
    env: Mapping[str, str] | None = None,
    poll_s: float = 0.2,
) -> Outcome:
    """Runs `command` (its output goes to this console) in its own process group; kills the group
    (SIGKILL) when its tree's resident memory passes `memory_cap_mb` or its wall time `time_cap_s`."""
    if memory_cap_mb <= 0 or time_cap_s <= 0 or poll_s <= 0:
        raise ValueError(f"caps and poll interval must be positive: {memory_cap_mb=}, {time_cap_s=}, {poll_s=}")
    start = time.perf_counter()
    child = subprocess.Popen(list(command), env=None if env is None else dict(env), start_new_session=True)
    peak, status = 0.0, None
    while child.poll() is None:
        peak = max(peak, tree_rss_mb(child.pid))
        elapsed = time.perf_counter() - start
        if peak > memory_cap_mb:
            status = MEMORY_CAP
        elif elapsed > time_cap_s:
            status = TIME_CAP
        if status is not None:
            _kill_group(child)
            break
        time.sleep(poll_s)
    seconds = time.perf_counter() - start
    returncode = child.wait()
    if status is None:
        status = OK if returncode == 0 else FAILED
    return Outcome(status, seconds, peak, returncode)


def _kill_group(child: subprocess.Popen) -> None:
    """SIGKILL to the group the child leads (it was started in a new session, so only its own tree)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
