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
from typing import Any

import dask

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
        futures = client.compute(list(collections))
        if progress and sys.stderr.isatty():
            from distributed import progress as dist_progress

            dist_progress(futures)
        return list(client.gather(futures))
    threads = max(1, os.cpu_count() or 1)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr, width=30, minimum=1.0):
            return list(dask.compute(*collections, scheduler="threads", num_workers=threads))
    return list(dask.compute(*collections, scheduler="threads", num_workers=threads))
