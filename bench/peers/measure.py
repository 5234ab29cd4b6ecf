"""Measuring one command's whole process tree: wall time, CPU-seconds (JVMs and orphans included), peak RSS.

In: an argv (plus env, cwd, a log file). Out: a :class:`Usage`.

The driver makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``),
so a process the measured command leaves behind (PyFlink's gateway JVM
outlives its Python process) is re-parented to the driver, not to init.
Once the command's main process has exited, whatever is left of its tree is
terminated and every process reaped with ``waitpid``: ``RUSAGE_CHILDREN``
then holds their user + sys time too, and its delta over the run is the
tree's CPU. Processes the driver started itself and wants kept (the Kafka
broker) are named in ``keep``: they are neither killed, reaped nor counted.

Peak RSS is the largest sum of the tree's resident sets, sampled from
``/proc`` every ~100 ms (so a peak shorter than that can be missed; shared
pages count once per process); which processes make up the tree is
rescanned every second, so a process living less than that may be missed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.1
RESCAN = 10  # samples between two scans of /proc for the tree's members


@dataclass(frozen=True)
class Usage:
    """What one run cost: seconds of wall clock and of CPU (user + sys), and the peak summed RSS."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int


def become_subreaper() -> None:
    """Adopt the orphans of every process this one starts (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        msg = f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}"
        raise OSError(msg)


def _parents() -> dict[int, int]:
    """pid -> ppid of every process now."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass  # gone meanwhile
    return parents


def _tree(roots: set[int], parents: dict[int, int]) -> set[int]:
    """The roots and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root for root in roots if root in parents]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _rss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def _measured(main: int, keep: set[int]) -> set[int]:
    """The measured tree: the main process, the driver's other children (its orphans) and their descendants."""
    parents = _parents()
    me = os.getpid()
    roots = {main} | {pid for pid, ppid in parents.items() if ppid == me and pid not in keep}
    return _tree(roots, parents) - _tree(keep, parents)


def _orphans(keep: set[int]) -> set[int]:
    me = os.getpid()
    return {pid for pid, ppid in _parents().items() if ppid == me and pid not in keep}


def _reap_leftovers(keep: set[int], grace_s: float = 10.0) -> None:
    """Terminate what is left of the tree (SIGTERM, after ``grace_s`` SIGKILL) and reap every process."""
    deadline = time.monotonic() + grace_s
    sig, sent = signal.SIGTERM, set()
    while orphans := _orphans(keep):
        if sig == signal.SIGTERM and time.monotonic() > deadline:
            sig, sent = signal.SIGKILL, set()
        for pid in _tree(orphans, _parents()) - sent:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            sent.add(pid)
        for pid in orphans:  # their own children become ours as they die, and are found next pass
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def run_tree(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, keep: set[int] = frozenset(),
             timeout_s: float = 3600) -> Usage:
    """Run ``argv`` to completion and return what its whole tree cost; its output goes to ``log``.

    Wall time is from spawning to the main process's exit; CPU and RSS
    cover the tree until the last process of it is reaped.
    """
    if _orphans(set(keep)):
        msg = f"unreaped children before a run: {sorted(_orphans(set(keep)))}"
        raise RuntimeError(msg)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    peak, samples, members = 0, 0, {process.pid}
    try:
        while process.poll() is None:
            if samples % RESCAN == 0:  # the tree rarely changes; scanning /proc costs ~3 ms
                members = _measured(process.pid, set(keep))
            peak = max(peak, _rss_bytes(members))
            samples += 1
            if time.perf_counter() - started > timeout_s:
                process.kill()
            time.sleep(SAMPLE_S)
    except BaseException:  # interrupted: leave no part of the tree running
        process.kill()
        process.wait()
        _reap_leftovers(set(keep), grace_s=2.0)
        raise
    wall = time.perf_counter() - started
    leftovers = _measured(process.pid, set(keep))  # what outlived the main process still counts
    if leftovers:
        peak = max(peak, _rss_bytes(leftovers))
        _reap_leftovers(set(keep))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Usage(wall_s=wall, cpu_s=cpu, peak_rss_mb=peak / 1e6, returncode=process.returncode)
