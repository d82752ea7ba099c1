"""Where a batch runs: a local Dask cluster, an existing scheduler, or an HPC/Kubernetes cluster.

``emqc batch`` runs the same Dask graphs everywhere; only the cluster differs. This module
turns the command line's ``--scheduler`` / ``--cluster`` / ``--cluster-config`` /
``--workers`` / ``--threads-per-worker`` into a connected :class:`distributed.Client`, and
closes everything it started on the way out.

It has two layers, after the rest of emqc:

* **Pure**: :func:`read_cluster_config` parses and checks a cluster configuration file
  (YAML, format in :mod:`emqc.batch._cluster_config`) into a :class:`ClusterConfig`;
  :func:`plan_cluster` combines it with the command line's options into a
  :class:`ClusterPlan` (which Dask class, with which keyword arguments, scaled how).
  :func:`job_script` renders the batch script a SLURM/PBS/SGE/LSF plan would submit and
  :func:`kubernetes_spec` the ``DaskCluster`` resource a Kubernetes plan would create,
  both without starting anything, so a lab can check its configuration on any machine.
* **Side-effecting**: :func:`batch_client` starts (or connects to) the cluster and
  yields a client; :func:`describe` says in one line what it is connected to.

Clusters are deployed with Dask's own projects: ``distributed.LocalCluster``,
``dask_jobqueue`` (``SLURMCluster``, ``PBSCluster``, ``SGECluster``, ``LSFCluster``) and
the dask-kubernetes operator's ``KubeCluster`` (optional: ``pip install 'emqc[kubernetes]'``).

The pure layer lives in :mod:`emqc.batch._cluster_config` (the file),
:mod:`emqc.batch._cluster_sections` (the checks of each kind's section) and
:mod:`emqc.batch._cluster_plan` (the plan and its renderings); this module holds the
side-effecting part and re-exports the public names of the others.

Examples
--------
>>> plan = plan_cluster(cluster="local", workers=2)
>>> plan.kind, plan.kwargs["n_workers"], plan.kwargs["threads_per_worker"]
('local', 2, 1)
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
from dask.utils import parse_timedelta

from emqc.errors import ClusterConfigError

from ._cluster_config import KINDS, ClusterConfig, read_cluster_config
from ._cluster_plan import SCHEDULER_PLACEHOLDER as SCHEDULER_PLACEHOLDER
from ._cluster_plan import (
    ClusterPlan,
    _import_kubernetes,
    _jobqueue_class,
    job_script,
    kubernetes_spec,
    plan_cluster,
)
from ._cluster_sections import _KUBE_CLIENT_KEYS

if TYPE_CHECKING:
    import distributed

__all__ = [
    "KINDS",
    "ClusterConfig",
    "ClusterPlan",
    "read_cluster_config",
    "plan_cluster",
    "job_script",
    "kubernetes_spec",
    "batch_client",
    "describe",
]


@contextlib.contextmanager
def batch_client(
    *,
    scheduler: str | None = None,
    cluster: str | None = None,
    config: str | Path | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    timeout: float | None = None,
) -> Iterator[distributed.Client]:
    """Start or connect to the Dask cluster of a batch run; yield a client; close all on exit.

    With ``scheduler``, connect to that running scheduler; otherwise start the cluster
    :func:`plan_cluster` describes (a ``LocalCluster`` by default, which needs no
    configuration). The client is the default client while open, so emqc's graphs run
    on it. Everything this started is closed on leaving the block, also on an error or
    ``KeyboardInterrupt``; a cluster reached through ``scheduler`` is left running.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786`` (``--scheduler``).
        Excludes the other options but ``timeout``.
    cluster : {'local', 'slurm', 'pbs', 'sge', 'lsf', 'kubernetes'}, optional
        Kind of cluster to start (``--cluster``); default the config file's, else local.
    config : str or Path, optional
        Cluster configuration file (``--cluster-config``), see :func:`read_cluster_config`.
    workers, threads_per_worker : int, optional
        ``--workers`` and ``--threads-per-worker``, see :func:`plan_cluster`.
    timeout : float, optional
        Seconds to wait for ``scheduler`` to answer; default Dask's
        ``distributed.comm.timeouts.connect`` (30 s).

    Yields
    ------
    distributed.Client

    Raises
    ------
    ClusterConfigError
        Conflicting options, an invalid configuration, an unreachable scheduler, a
        missing ``sbatch``/``qsub``/``bsub``, dask-kubernetes missing or a Kubernetes
        cluster that cannot be created.

    Examples
    --------
    >>> with batch_client(workers=1) as client:  # doctest: +SKIP
    ...     print(describe(client))
    LocalCluster at tcp://127.0.0.1:40123: 1 worker, 1 thread; dashboard http://...
    """
    if scheduler is not None:
        _check_scheduler_alone(
            scheduler,
            {
                "--cluster": cluster,
                "--cluster-config": config,
                "--workers": workers,
                "--threads-per-worker": threads_per_worker,
            },
        )
        client = _connect(scheduler, timeout)
        try:
            yield client
        finally:
            client.close()
        return

    plan = plan_cluster(
        read_cluster_config(config) if config is not None else None,
        cluster=cluster,
        workers=workers,
        threads_per_worker=threads_per_worker,
    )
    from distributed import Client

    with contextlib.ExitStack() as stack:
        dask_cluster = _start(plan)
        stack.callback(dask_cluster.close)
        if plan.adapt is not None:
            dask_cluster.adapt(**plan.adapt)
        elif plan.scale is not None:
            dask_cluster.scale(**plan.scale)
        client = Client(dask_cluster)
        stack.callback(client.close)  # closed first (last in, first out)
        yield client


def _check_scheduler_alone(scheduler: str, options: dict[str, Any]) -> None:
    """Refuse the options that only apply to a cluster emqc starts, given with ``--scheduler``."""
    given = [flag for flag, value in options.items() if value is not None]
    if given:
        raise ClusterConfigError(
            f"--scheduler {scheduler} connects to a running Dask cluster, which is already "
            f"sized and configured; {', '.join(given)} only apply to a cluster emqc starts. "
            "Give --scheduler or those options, not both."
        )


def _connect(address: str, timeout: float | None) -> distributed.Client:
    from distributed import Client

    if timeout is None:
        timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"))
    # Build the client in two steps so that one that failed to connect can still be
    # closed here, rather than by the garbage collector once its event loop is gone.
    client = Client.__new__(Client)
    try:
        client.__init__(address, timeout=timeout)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(Exception):
            client.close(timeout=1)
        raise ClusterConfigError(
            f"cannot reach the Dask scheduler at {address} ({exc}). Check the address "
            "(tcp://HOST:PORT, port 8786 by default), that the scheduler is running "
            "(dask scheduler) and that this machine can reach that port; or drop --scheduler "
            "to run on a local cluster."
        ) from exc
    return client


def _start(plan: ClusterPlan) -> Any:
    """Construct the plan's cluster (its scheduler starts; no job or pod is submitted yet)."""
    if plan.kind == "local":
        import dask
        from distributed import LocalCluster

        from .._memory import scoring_worker_config

        # Workers' statistical profiler (the dashboard's Profile tab) samples every thread
        # every 10 ms; on a small machine scoring blocks, that cost about a tenth of the
        # cores in the batch scaling benchmark. Workers take the config when they spawn,
        # and with it the allocator settings that let them reuse freed memory block after
        # block (emqc._memory).
        with dask.config.set(
            {"distributed.worker.profile.enabled": False, **scoring_worker_config()}
        ):
            return LocalCluster(**plan.kwargs)
    if plan.kind == "kubernetes":
        return _start_kubernetes(plan)
    cls = _jobqueue_class(plan.kind)
    job_script(plan)  # checks the settings without leaving a half-built cluster behind
    submit = cls.job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise ClusterConfigError(
            f"{submit!r} is not on PATH, so no {plan.kind} job can be submitted from here. Run "
            f"emqc batch on a machine that submits {plan.kind} jobs (a login node), or use "
            "--cluster local or --scheduler ADDRESS."
        )
    try:
        return cls(**plan.kwargs)
    except (TypeError, ValueError) as exc:
        raise ClusterConfigError(
            f"{plan.source}: dask-jobqueue rejects the {plan.kind} settings: {exc}. Fix the "
            f"{plan.kind} section."
        ) from exc


def _start_kubernetes(plan: ClusterPlan) -> Any:
    operator = _import_kubernetes()
    from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode

    spec = kubernetes_spec(plan)
    kwargs = {
        k: v
        for k, v in plan.kwargs.items()
        if k in _KUBE_CLIENT_KEYS and k != "custom_cluster_spec"
    }
    if kwargs.get("create_mode") is not None:
        kwargs["create_mode"] = CreateMode(kwargs["create_mode"])
    try:
        return operator.KubeCluster(custom_cluster_spec=spec, **kwargs)
    except Exception as exc:  # kr8s, httpx and the operator raise many unrelated types
        raise ClusterConfigError(
            f"cannot start the Dask cluster {spec['metadata']['name']!r} on Kubernetes "
            f"({type(exc).__name__}: {exc}). Check that kubectl reaches the cluster "
            "(kubectl get pods), that the Dask operator is installed "
            "(https://kubernetes.dask.org/en/latest/installing.html) and the settings in "
            f"{plan.source}."
        ) from exc


def describe(client: distributed.Client) -> str:
    """One line saying what ``client`` is connected to, for the command line to print.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    str
        E.g. ``LocalCluster at tcp://127.0.0.1:40123: 2 workers, 2 threads;
        dashboard http://127.0.0.1:8787/status``.
    """
    cluster = getattr(client, "cluster", None)
    what = type(cluster).__name__ if cluster is not None else "Dask scheduler"
    nthreads = client.nthreads()
    n, threads = len(nthreads), sum(nthreads.values())
    size = (
        f"{n} worker{'s' if n != 1 else ''}, {threads} thread{'s' if threads != 1 else ''}"
        if n
        else "no workers yet (they join as their jobs or pods start)"
    )
    link = client.dashboard_link or "none"
    return f"{what} at {client.scheduler.address}: {size}; dashboard {link}"
