"""Shared by the benchmarks: run a command in a fresh process, measure wall time and peak memory."""

from __future__ import annotations

import subprocess
import time

import psutil

__all__ = ["measure"]


def measure(cmd: list[str]) -> dict[str, float | str | list[float]]:
    """Run ``cmd``; return wall seconds and peak RSS (bytes) of its process tree.

    Also the CPU seconds (user + system) of the command's own process
    (``cpu_seconds``) and of each process it started (``child_cpu_seconds``, largest
    first), as last seen while polling every 20 ms. A command that fails with
    ``MemoryError`` is reported as failed, not fatal.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, own_cpu, child_cpu = 0, 0.0, {}
    while proc.poll() is None:
        try:
            children = ps.children(recursive=True)
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in children))
            own_cpu = sum(ps.cpu_times()[:2])
            for c in children:
                child_cpu[c.pid] = sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    cpu = {"cpu_seconds": own_cpu, "child_cpu_seconds": sorted(child_cpu.values(), reverse=True)}
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        if "MemoryError" in err:
            return {"seconds": wall, "peak_rss_bytes": peak, **cpu, "failed": "MemoryError"}
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return {"seconds": wall, "peak_rss_bytes": peak, **cpu}
