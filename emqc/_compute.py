"""Running Dask graphs: on the active distributed client if there is one, else on threads.

The library never starts a cluster by itself; front ends decide (``emqc demo``
starts a ``LocalCluster``, ``emqc ingest --scheduler ADDRESS`` connects to one).
Progress goes to standard error so standard output stays clean for results.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import dask
from dask.diagnostics import ProgressBar

__all__ = ["compute", "active_client"]

log = logging.getLogger("emqc")


def active_client() -> Any | None:
    """The current ``distributed.Client``, or None when running without one."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def compute(collections: Sequence[Any], *, label: str, progress: bool = True) -> list[Any]:
    """Compute Dask collections, with a progress bar, and return their results.

    Parameters
    ----------
    collections : sequence of Dask collections or Delayed
    label : str
        What is being computed, logged before the bar.
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    list
        One result per collection, in order.
    """
    log.info(label)
    client = active_client()
    if client is not None:
        return _compute_on_client(client, collections, progress)
    # A pool of our own, shut down (waiting) before returning or raising: when one task
    # fails, dask raises at once while others may still be running, and a caller that
    # then removes a partial output must not have it written to again behind its back.
    # Its size: Dask's own ``num_workers`` setting (e.g. DASK_NUM_WORKERS=2), else every core.
    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    try:
        with ProgressBar(out=sys.stderr, width=30, minimum=1.0) if progress else nullcontext():
            return list(dask.compute(*collections, scheduler="threads", pool=pool))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _compute_on_client(client: Any, collections: Sequence[Any], progress: bool) -> list[Any]:
    from distributed import progress as dist_progress

    futures = client.compute(list(collections))
    try:
        if progress and sys.stderr.isatty():
            dist_progress(futures)
        return list(client.gather(futures))
    except BaseException:
        # Stop what has not started; a task already running on a worker finishes there, so
        # outputs written by tasks must be checked by digest, never trusted by presence.
        client.cancel(futures)
        raise
