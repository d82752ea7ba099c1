"""From a configuration and the command line's options to a :class:`ClusterPlan`, and
what that plan would submit.

Pure: :func:`plan_cluster` decides which Dask class to start, with which keyword
arguments, scaled how; :func:`job_script` renders the batch script an HPC plan's jobs
would run and :func:`kubernetes_spec` the ``DaskCluster`` resource a Kubernetes plan
would create. Nothing here starts a cluster (that is :mod:`emqc.batch._cluster`).
"""

from __future__ import annotations

import getpass
import inspect
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import yaml

from emqc.errors import ClusterConfigError

from ._cluster_config import ClusterConfig, _check_units
from ._cluster_sections import _JOBQUEUE, _KUBE_CONFIG, _check_kind, _class_name

__all__ = [
    "SCHEDULER_PLACEHOLDER",
    "ClusterPlan",
    "plan_cluster",
    "job_script",
    "kubernetes_spec",
]

#: Placeholder scheduler address in rendered job scripts (the real one exists only at run time).
SCHEDULER_PLACEHOLDER = "tcp://<scheduler-address>:8786"


@dataclass(frozen=True)
class ClusterPlan:
    """What to start: the cluster kind, the Dask class's keyword arguments and the size.

    Parameters
    ----------
    kind : {'local', 'slurm', 'pbs', 'sge', 'lsf', 'kubernetes'}
    kwargs : mapping
        Keyword arguments for the Dask class (``LocalCluster``, the ``dask_jobqueue``
        class, or ``KubeCluster`` plus emqc's ``volumes``/``volume_mounts``). Settings
        absent here come from Dask's configuration.
    scale : mapping or None
        Passed to ``cluster.scale(...)`` after start: ``{'jobs': N}`` or ``{'n': N}``.
    adapt : mapping or None
        Passed to ``cluster.adapt(...)`` after start.
    source : str
        Where the settings came from, for error messages.
    """

    kind: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    scale: Mapping[str, int] | None = None
    adapt: Mapping[str, int] | None = None
    source: str = "<no cluster config file>"

    @property
    def class_name(self) -> str:
        """Dotted name of the Dask class this plan starts."""
        return _class_name(self.kind)

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (for logging and the run record)."""
        return {
            "kind": self.kind,
            "class": self.class_name,
            "kwargs": dict(self.kwargs),
            "scale": None if self.scale is None else dict(self.scale),
            "adapt": None if self.adapt is None else dict(self.adapt),
            "source": self.source,
        }


def _check_option(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ClusterConfigError(f"{name.replace('_', '-')} must be at least 1, got {value}.")
    return value


def plan_cluster(
    config: ClusterConfig | None = None,
    *,
    cluster: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
) -> ClusterPlan:
    """Decide which cluster to start, with which settings, scaled how (nothing is started).

    Precedence, highest first: the command line's options, the configuration file,
    Dask's own configuration (consulted by the Dask classes for anything still unset),
    emqc's defaults.

    Parameters
    ----------
    config : ClusterConfig, optional
        From :func:`read_cluster_config`; None means no file (all defaults).
    cluster : {'local', 'slurm', 'pbs', 'sge', 'lsf', 'kubernetes'}, optional
        The kind (``--cluster``); default the file's ``cluster:``, else ``'local'``.
    workers : int, optional
        Number of Dask workers (``--workers``): the local cluster's size, or the target
        of ``scale`` for the others (replacing the file's ``scale``/``adapt``). Default
        locally: one worker per ``threads_per_worker`` cores.
    threads_per_worker : int, optional
        Threads of each worker (``--threads-per-worker``); default 1 locally. For HPC
        kinds it sets ``processes = cores // threads_per_worker``; for Kubernetes it adds
        ``--nthreads`` to the worker command.

    Returns
    -------
    ClusterPlan

    Raises
    ------
    ClusterConfigError
        Unknown kind, a kind the file does not configure, a size in jobs for a kind
        without jobs, threads that do not divide a job's cores.
    """
    workers = _check_option("workers", workers)
    threads = _check_option("threads_per_worker", threads_per_worker)
    config = config if config is not None else ClusterConfig()
    source = config.source
    if cluster is not None:
        kind = _check_kind(cluster, where="--cluster:")
        if config.kind not in (None, kind) and kind not in config.sections:
            raise ClusterConfigError(
                f"{source} configures a {config.kind} cluster and has no {kind!r} section, but "
                f"--cluster {kind} was given; pass the file written for {kind}, or drop --cluster."
            )
    else:
        kind = config.kind or "local"
    settings = {k: v for k, v in config.sections.get(kind, {}).items()}
    scale, adapt = config.scale, config.adapt
    if workers is not None:
        scale, adapt = {"workers": workers}, None
    _check_units(kind, scale, adapt, source)
    if kind == "local":
        return _plan_local(settings, scale, adapt, threads, source)
    if kind == "kubernetes":
        return _plan_kubernetes(settings, scale, adapt, threads, source)
    return _plan_jobqueue(kind, settings, scale, adapt, threads, source)


def _plan_local(settings, scale, adapt, threads, source) -> ClusterPlan:
    threads = threads or settings.get("threads_per_worker") or 1
    if scale is not None:
        n_workers = scale["workers"]
    else:
        n_workers = settings.get("n_workers") or max(1, dask.system.CPU_COUNT // threads)
    kwargs = {
        **settings,
        "n_workers": n_workers,
        "threads_per_worker": threads,
        # Processes: the scoring networks and numpy release the GIL only in part.
        "processes": True if settings.get("processes") is None else settings["processes"],
        # Any free port, so two runs (or two users) on one machine do not clash.
        "dashboard_address": settings.get("dashboard_address") or ":0",
        "silence_logs": settings.get("silence_logs") or logging.WARNING,
    }
    return ClusterPlan("local", kwargs, scale=None, adapt=adapt, source=source)


def _plan_jobqueue(kind, settings, scale, adapt, threads, source) -> ClusterPlan:
    config_name = settings.get("config_name") or kind
    if dask.config.get(f"jobqueue.{config_name}", None) is None:
        raise ClusterConfigError(
            f"{source}: {kind}.config_name {config_name!r} names no section of Dask's jobqueue "
            "config (~/.config/dask/jobqueue.yaml); fix the name or drop config_name."
        )
    kwargs = dict(settings)
    cores = settings.get("cores") or dask.config.get(f"jobqueue.{config_name}.cores", None)
    processes = settings.get("processes")
    if cores and processes and processes > cores:
        raise ClusterConfigError(
            f"{source}: {kind}.processes ({processes}) exceeds the {cores} cores of a job, "
            "which would leave workers with no thread; lower processes or raise cores."
        )
    # Merge (not replace) Dask's scheduler-options, and take any free dashboard port: a
    # login node is shared, and 8787 is often taken there.
    options = dict(dask.config.get(f"jobqueue.{config_name}.scheduler-options", None) or {})
    options.update(settings.get("scheduler_options") or {})
    options.setdefault("dashboard_address", ":0")
    kwargs["scheduler_options"] = options
    if threads is not None:
        if not cores:
            raise ClusterConfigError(
                f"{source}: --threads-per-worker needs the cores of a job, which neither the "
                f"{kind} section nor Dask's jobqueue.{config_name} config sets; add 'cores:'."
            )
        if cores % threads:
            raise ClusterConfigError(
                f"{source}: --threads-per-worker {threads} does not divide the {cores} cores of "
                f"a {kind} job; choose a divisor of {cores}, or change {kind}.cores."
            )
        kwargs["processes"] = cores // threads
    plan_scale = None
    if scale is not None:
        plan_scale = {"jobs": scale["jobs"]} if "jobs" in scale else {"n": scale["workers"]}
    return ClusterPlan(kind, kwargs, scale=plan_scale, adapt=adapt, source=source)


def _plan_kubernetes(settings, scale, adapt, threads, source) -> ClusterPlan:
    kwargs = dict(settings)
    kwargs.setdefault("quiet", True)  # KubeCluster would otherwise draw a spinner on stdout
    if scale is not None:
        kwargs["n_workers"] = scale["workers"]  # in the spec, so the pods start at once
    if threads is not None:
        if kwargs.get("custom_cluster_spec") is not None:
            raise ClusterConfigError(
                f"{source}: --threads-per-worker cannot change kubernetes.custom_cluster_spec; "
                "set --nthreads in that spec's worker args instead."
            )
        command = kwargs.get("worker_command") or dask.config.get("kubernetes.worker-command")
        command = command.split() if isinstance(command, str) else list(command)
        kwargs["worker_command"] = [*command, "--nthreads", str(threads)]
    return ClusterPlan("kubernetes", kwargs, scale=None, adapt=adapt, source=source)


# --- pure renderings of what would be submitted ------------------------------------------


def _jobqueue_class(kind: str) -> Any:
    import dask_jobqueue

    return getattr(dask_jobqueue, _JOBQUEUE[kind])


def job_script(plan: ClusterPlan) -> str:
    """The batch script an HPC plan's jobs would run, rendered without starting anything.

    The scheduler's address is a placeholder (:data:`SCHEDULER_PLACEHOLDER`); otherwise
    the script is what ``cluster.job_script()`` shows once the cluster is up, including
    settings taken from Dask's jobqueue configuration. Nothing is submitted and no
    scheduler starts; the one side effect is dask-jobqueue's own: it creates the
    ``log_directory`` folder, if one is set and missing.

    Parameters
    ----------
    plan : ClusterPlan
        A plan for ``slurm``, ``pbs``, ``sge`` or ``lsf``.

    Returns
    -------
    str
        The script, ``#SBATCH``/``#PBS``/... directives first.

    Raises
    ------
    ClusterConfigError
        The plan is not for an HPC kind, or dask-jobqueue rejects its settings (e.g. no
        ``cores``/``memory`` anywhere).
    """
    if plan.kind not in _JOBQUEUE:
        raise ClusterConfigError(
            f"{plan.source}: a {plan.kind} cluster has no job script; only "
            f"{', '.join(_JOBQUEUE)} clusters submit batch jobs."
        )
    from dask_jobqueue.core import JobQueueCluster

    cls = _jobqueue_class(plan.kind)
    cluster_only = set(inspect.signature(JobQueueCluster.__init__).parameters) - {"config_name"}
    job_kwargs = {k: v for k, v in plan.kwargs.items() if k not in cluster_only}
    config_name = plan.kwargs.get("config_name") or cls.job_cls.default_config_name()
    job_kwargs["config_name"] = config_name
    # As JobQueueCluster passes them to each job.
    job_kwargs["interface"] = plan.kwargs.get("interface") or dask.config.get(
        f"jobqueue.{config_name}.interface", None
    )
    job_kwargs["protocol"] = plan.kwargs.get("protocol")
    try:
        job = cls.job_cls(SCHEDULER_PLACEHOLDER, name="dummy-name", **job_kwargs)
    except (TypeError, ValueError) as exc:
        raise ClusterConfigError(
            f"{plan.source}: dask-jobqueue rejects the {plan.kind} settings: {exc}. Fix the "
            f"{plan.kind} section (or Dask's jobqueue.{config_name} config, "
            "~/.config/dask/jobqueue.yaml)."
        ) from exc
    return job.job_script()


def _import_kubernetes() -> Any:
    try:
        from dask_kubernetes import operator
    except ImportError as exc:
        raise ClusterConfigError(
            "--cluster kubernetes needs dask-kubernetes, which is not installed; install it "
            "with pip install 'emqc[kubernetes]'."
        ) from exc
    return operator


def kubernetes_spec(plan: ClusterPlan) -> dict[str, Any]:
    """The ``DaskCluster`` resource a Kubernetes plan creates, built without contacting a cluster.

    Built with ``dask_kubernetes.operator.make_cluster_spec`` from the plan's settings
    (the unset ones from Dask's ``kubernetes`` config, as ``KubeCluster`` does), plus the
    plan's ``volumes`` on both pods and ``volume_mounts`` on their containers.
    :func:`batch_client` deploys exactly this resource, so printing it
    (``yaml.safe_dump``) and applying it with ``kubectl apply --dry-run=server -f -``
    checks a configuration.

    Parameters
    ----------
    plan : ClusterPlan
        A plan for ``kubernetes``.

    Returns
    -------
    dict
        ``apiVersion: kubernetes.dask.org/v1``, ``kind: DaskCluster``, metadata, spec.

    Raises
    ------
    ClusterConfigError
        Not a Kubernetes plan, dask-kubernetes missing, an invalid cluster name, an
        unreadable ``custom_cluster_spec``.
    """
    if plan.kind != "kubernetes":
        raise ClusterConfigError(f"{plan.source}: a {plan.kind} cluster has no Kubernetes spec.")
    operator = _import_kubernetes()
    custom = plan.kwargs.get("custom_cluster_spec")
    if custom is not None:
        return _load_custom_spec(custom, plan.source)
    values = {
        key: plan.kwargs[key]
        if plan.kwargs.get(key) is not None
        else dask.config.get(f"kubernetes.{config_key}", None)
        for key, config_key in _KUBE_CONFIG.items()
    }
    values = {k: v for k, v in values.items() if v is not None}
    name = str(values.pop("name", "dask-{user}-{uuid}"))
    try:
        name = name.format(user=getpass.getuser(), uuid=str(uuid.uuid4())[:10], **os.environ)
    except (KeyError, IndexError, ValueError) as exc:
        raise ClusterConfigError(
            f"{plan.source}: kubernetes.name {name!r} has a placeholder other than {{user}}, "
            "{uuid} or an environment variable; fix the name."
        ) from exc
    from dask_kubernetes.operator.validation import validate_cluster_name

    try:
        validate_cluster_name(name)
    except Exception as exc:  # dask-kubernetes' ValidationError has no common base
        raise ClusterConfigError(
            f"{plan.source}: kubernetes.name {name!r} is not a valid DaskCluster name: lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit."
        ) from exc
    # Through JSON: make_cluster_spec shares env and resources between the two pods, and a
    # deepcopy would keep that sharing (YAML dumps it as anchors; edits would hit both).
    spec = json.loads(json.dumps(operator.make_cluster_spec(name, **values)))
    volumes = list(plan.kwargs.get("volumes") or [])
    mounts = list(plan.kwargs.get("volume_mounts") or [])
    for part in ("scheduler", "worker"):
        pod = spec["spec"][part]["spec"]
        if volumes:
            pod["volumes"] = [dict(v) for v in volumes]
        if mounts:
            for container in pod["containers"]:
                container["volumeMounts"] = [dict(m) for m in mounts]
    return spec


def _load_custom_spec(custom: str | Mapping[str, Any], source: str) -> dict[str, Any]:
    if isinstance(custom, Mapping):
        return dict(custom)
    path = Path(custom)
    if not path.is_absolute() and Path(source).exists():
        path = Path(source).parent / path  # relative to the config file, not the cwd
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterConfigError(
            f"{source}: kubernetes.custom_cluster_spec {str(path)!r} cannot be read as YAML "
            f"({exc}); give the path of a DaskCluster resource file."
        ) from exc
    if not isinstance(spec, Mapping) or spec.get("kind") != "DaskCluster":
        raise ClusterConfigError(
            f"{source}: {str(path)!r} (kubernetes.custom_cluster_spec) is not a DaskCluster "
            "resource (kind: DaskCluster)."
        )
    return dict(spec)
