"""Keep freed memory in scoring processes for reuse (glibc's and numpy's allocator settings).

Scoring allocates and frees the same large arrays for every block: network
activations of hundreds of megabytes, float maps of the block. glibc's allocator
serves each request over 32 MB with a fresh ``mmap`` and unmaps it when it is
freed, so for every block the kernel faults in and zeroes gigabytes of pages again.
On a 2-core machine that system time was 45 % of ``emqc score``'s CPU time (6
blocks of 320³ voxels: 85 of 188 CPU seconds, 101 s in all; with the settings
below 26 s of system time and 64 s in all, the same scores).

:data:`SCORING_MEMORY_ENV` asks glibc to serve large requests from its heap and to
keep what is freed there, in one arena, so that the threads of a process reuse each
other's freed blocks (the documented tunables ``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_ARENA_MAX`` [1]_). A process then holds on
to its peak memory until it exits, which is what a scoring process reaches with
every block anyway.

The heap still has to grow to that peak once, and two more settings make that cheaper:

- ``MALLOC_TOP_PAD_`` (1 GiB): glibc extends the heap by at least this much at a time
  (address space only; pages are faulted in when first touched). By default it
  extends it by 128 KiB per ``brk`` call, and each call takes the process's
  memory-map lock for writing, which stalls the page faults of every other thread:
  two threads each touching 3 GB of new heap spent 10-16 s of system time, 2.1 s
  with the pad (2-core VM, Linux 6.18).
- ``NUMPY_MADVISE_HUGEPAGE=0`` [2]_: numpy asks for transparent huge pages for every
  array of 4 MB or more; where the kernel must first compact memory to find 2 MB
  pages (``defrag`` set to ``madvise``, common on cloud VMs) a fault then costs
  about a millisecond instead of microseconds. The first 320³ block of a process
  took 16.4 s with it and 11.9 s without (system time 4.9 -> 0.9 s); later blocks
  reuse the heap either way.

glibc and numpy read them only when a process starts (``mallopt`` at run time cannot
move threads that already have an arena of their own), so:

- the ``emqc`` command restarts itself with them once, before importing anything
  heavy (:mod:`emqc.__main__`, :func:`restart_with_scoring_allocator`; ``exec``, same process id, same
  arguments); a value set already in the environment is left as it is, and
  ``EMQC_SYSTEM_MALLOC=1`` turns this off;
- Dask workers that emqc starts get them through Dask's own
  ``distributed.nanny.pre-spawn-environ`` (:func:`worker_environ`), which otherwise
  sets ``MALLOC_TRIM_THRESHOLD_=65536`` to hand memory back eagerly.

Elsewhere than Linux with glibc (macOS, musl) nothing changes.

References
----------
.. [1] "Memory Allocation Tunables", The GNU C Library Reference Manual (glibc
   2.36), and mallopt(3), Linux man-pages.
.. [2] NumPy reference, "Memory management in NumPy": ``NUMPY_MADVISE_HUGEPAGE``
   (environment variables, numpy 1.16 and later).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

__all__ = [
    "SCORING_MEMORY_ENV",
    "restart_with_scoring_allocator",
    "scoring_worker_config",
    "worker_environ",
]

#: Allocator settings for processes that score blocks (see the module docstring).
SCORING_MEMORY_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30),
    "MALLOC_TOP_PAD_": str(2**30),
    "NUMPY_MADVISE_HUGEPAGE": "0",
}


def _applies() -> bool:
    """glibc on Linux, and not turned off with ``EMQC_SYSTEM_MALLOC``."""
    if os.environ.get("EMQC_SYSTEM_MALLOC"):
        return False
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def restart_with_scoring_allocator() -> None:
    """Re-execute this process with :data:`SCORING_MEMORY_ENV` unless it already has it.

    For the ``emqc`` console script only, before any work: the process image is
    replaced (same pid, arguments and interpreter options); nothing returns when it
    restarts. Does nothing off glibc, with ``EMQC_SYSTEM_MALLOC`` set, or when every
    setting is already in the environment (a user's own value wins).
    """
    if not _applies():
        return
    missing = {k: v for k, v in SCORING_MEMORY_ENV.items() if k not in os.environ}
    if not missing:
        return
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    try:
        os.execve(sys.executable, argv, {**os.environ, **missing})
    except OSError:  # pragma: no cover - exec refused (e.g. no such interpreter): carry on
        return


def worker_environ(environ: Mapping[str, object]) -> dict[str, object]:
    """Dask's ``pre-spawn-environ`` with :data:`SCORING_MEMORY_ENV` (glibc only).

    A setting already in this process's environment (the user's own) is passed on
    instead: Dask's default ``MALLOC_TRIM_THRESHOLD_`` would otherwise replace it.
    """
    if not _applies():
        return dict(environ)
    return {**environ, **{k: os.environ.get(k, v) for k, v in SCORING_MEMORY_ENV.items()}}


def scoring_worker_config() -> dict[str, object]:
    """Dask settings for the local workers emqc starts: :func:`worker_environ` at spawn."""
    import dask
    import distributed  # noqa: F401 - loads distributed's defaults into dask.config

    spawn = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {"distributed.nanny.pre-spawn-environ": worker_environ(spawn)}
