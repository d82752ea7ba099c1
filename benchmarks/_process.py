"""Shared by the benchmarks: run a command in a fresh process, measure wall time and peak memory."""

from __future__ import annotations

import subprocess
import time

import psutil

__all__ = ["measure"]


def measure(cmd: list[str]) -> dict[str, float | str]:
    """Run ``cmd``; return wall seconds and peak RSS (bytes) of its process tree.

    A command that fails with ``MemoryError`` is reported as failed, not fatal.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(
                c.memory_info().rss for c in ps.children(recursive=True)
            )
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        if "MemoryError" in err:
            return {"seconds": wall, "peak_rss_bytes": peak, "failed": "MemoryError"}
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return {"seconds": wall, "peak_rss_bytes": peak}
