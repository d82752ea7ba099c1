"""Shared by the benchmarks: run a command in a fresh process, measure wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import time

import psutil

__all__ = ["measure"]

#: Seconds between two reads of the process tree's memory (cheap: one /proc file each).
MEMORY_EVERY = 0.02
#: Seconds between two scans for the command's child processes and their CPU times.
#: Listing children walks all of /proc (about 0.5 ms of CPU here); doing it every 20 ms
#: wakes the measuring process 50 times a second on the cores the command runs on.
TREE_EVERY = 0.5


def measure(cmd: list[str]) -> dict[str, float | str | list[float]]:
    """Run ``cmd``; return wall seconds and peak RSS (bytes) of its process tree.

    Peak RSS is the largest sum over the tree seen while polling (memory every 20 ms,
    the list of child processes every 0.5 s), and at least the kernel's own high-water
    mark of the command's largest process (``ru_maxrss`` from ``wait4``), which no
    sampling can miss. ``cpu_seconds`` is the CPU time (user + system) of the command's
    own process and ``child_cpu_seconds`` that of each process it started (largest
    first, as last seen); ``tree_cpu_seconds`` is the kernel's exact total for the
    command and every descendant it waited for. A command that fails with
    ``MemoryError`` is reported as failed, not fatal.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, own_cpu, child_cpu = 0, 0.0, {}
    children: list[psutil.Process] = []
    next_scan = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            now = time.perf_counter()
            if now >= next_scan:
                children = ps.children(recursive=True)
                own_cpu = sum(ps.cpu_times()[:2])
                for c in children:
                    child_cpu[c.pid] = sum(c.cpu_times()[:2])
                next_scan = now + TREE_EVERY
            rss = ps.memory_info().rss
            for c in children:
                try:
                    rss += c.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(MEMORY_EVERY)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    tree_cpu = usage.ru_utime + usage.ru_stime
    if not child_cpu:  # one process: the kernel's figure is exact and final
        own_cpu = tree_cpu
    peak = max(peak, usage.ru_maxrss * 1024)
    cpu = {
        "cpu_seconds": own_cpu,
        "child_cpu_seconds": sorted(child_cpu.values(), reverse=True),
        "tree_cpu_seconds": tree_cpu,
    }
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        if "MemoryError" in err:
            return {"seconds": wall, "peak_rss_bytes": peak, **cpu, "failed": "MemoryError"}
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return {"seconds": wall, "peak_rss_bytes": peak, **cpu}
