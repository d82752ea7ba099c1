"""Where a batch runs: a local Dask cluster, an existing scheduler, or an HPC/Kubernetes cluster.

``emqc batch`` runs the same Dask graphs everywhere; only the cluster differs. This module
turns the command line's ``--scheduler`` / ``--cluster`` / ``--cluster-config`` /
``--workers`` / ``--threads-per-worker`` into a connected :class:`distributed.Client`, and
closes everything it started on the way out.

It has two layers, after the rest of emqc:

* **Pure**: :func:`read_cluster_config` parses and checks a cluster configuration file
  (YAML, format below) into a :class:`ClusterConfig`; :func:`plan_cluster` combines it
  with the command line's options into a :class:`ClusterPlan` (which Dask class, with
  which keyword arguments, scaled how). :func:`job_script` renders the batch script a
  SLURM/PBS/SGE/LSF plan would submit and :func:`kubernetes_spec` the ``DaskCluster``
  resource a Kubernetes plan would create, both without starting anything, so a lab
  can check its configuration on any machine.
* **Side-effecting**: :func:`batch_client` starts (or connects to) the cluster and
  yields a client; :func:`describe` says in one line what it is connected to.

Clusters are deployed with Dask's own projects: ``distributed.LocalCluster``,
``dask_jobqueue`` (``SLURMCluster``, ``PBSCluster``, ``SGECluster``, ``LSFCluster``) and
the dask-kubernetes operator's ``KubeCluster`` (optional: ``pip install 'emqc[kubernetes]'``).

Configuration file
------------------
::

    cluster: slurm            # local | slurm | pbs | sge | lsf | kubernetes
    slurm:                    # keyword arguments of dask_jobqueue.SLURMCluster
      queue: normal
      account: lab123
      cores: 8
      processes: 4
      memory: 32GB
      walltime: "04:00:00"
      job_extra_directives: ["--constraint=cpu"]
    scale: {jobs: 10}         # or {workers: 40}; or instead
    # adapt: {minimum_jobs: 1, maximum_jobs: 50}   # or {minimum: 4, maximum: 200} workers

Top-level keys: ``cluster`` (the kind to start when ``--cluster`` is not given), one
section per kind (``local``, ``slurm``, ``pbs``, ``sge``, ``lsf``, ``kubernetes``; a file
may hold several, ``cluster`` or ``--cluster`` picks one), and at most one of ``scale``
and ``adapt``. A section's keys are the keyword arguments of the Dask class for that
kind (``-`` may be written for ``_``, as in Dask's own YAML). Settings in this file
override Dask's configuration (``~/.config/dask/jobqueue.yaml``, ``kubernetes.yaml``,
``DASK_*`` variables), which still supplies every setting the file leaves out.

The ``kubernetes`` section also takes ``volumes`` and ``volume_mounts`` (Kubernetes
``Volume`` and ``VolumeMount`` objects) that emqc adds to the scheduler and worker pods,
so the data can come from a PersistentVolumeClaim.

Examples
--------
>>> plan = plan_cluster(cluster="local", workers=2)
>>> plan.kind, plan.kwargs["n_workers"], plan.kwargs["threads_per_worker"]
('local', 2, 1)
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import getpass
import inspect
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import yaml
from dask.utils import parse_bytes, parse_timedelta

from emqc.errors import ClusterConfigError

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

#: Every cluster kind ``--cluster`` and the file's ``cluster:`` key accept.
KINDS = ("local", "slurm", "pbs", "sge", "lsf", "kubernetes")

#: The dask_jobqueue class for each HPC kind.
_JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}

_TOP_LEVEL = ("cluster", *KINDS, "scale", "adapt")

_SCALE_KEYS = ("jobs", "workers")
_ADAPT_KEYS = ("minimum", "maximum", "minimum_jobs", "maximum_jobs")

#: Where a setting of the Dask class is set some other way, and how.
_MOVED = {
    "dashboard_address": "set it inside scheduler_options: {dashboard_address: ':8787'}",
    "host": "set it inside scheduler_options: {host: HOST}",
    "n_workers": "set the size with the top-level 'scale: {workers: N}' (or --workers N)",
    "extra": "use worker_extra_args (dask-jobqueue renamed it)",
    "job_extra": "use job_extra_directives (dask-jobqueue renamed it)",
    "env_extra": "use job_script_prologue (dask-jobqueue renamed it)",
    "header_skip": "use job_directives_skip (dask-jobqueue renamed it)",
}

#: Keyword arguments no configuration file may set (emqc or Dask sets them itself).
_INTERNAL = frozenset({"self", "loop", "asynchronous", "job_cls", "scheduler_cls", "scheduler"})

#: Settings of the local section: LocalCluster's own and the worker options labs change.
_LOCAL_KEYS = (
    "n_workers",
    "threads_per_worker",
    "processes",
    "memory_limit",
    "dashboard_address",
    "host",
    "scheduler_port",
    "protocol",
    "interface",
    "local_directory",
    "resources",
    "silence_logs",
    "worker_dashboard_address",
    "scheduler_kwargs",
    "name",
)

#: KubeCluster settings that shape the DaskCluster resource (built by kubernetes_spec).
_KUBE_SPEC_KEYS = (
    "name",
    "image",
    "n_workers",
    "resources",
    "env",
    "worker_command",
    "scheduler_service_type",
    "idle_timeout",
    "jupyter",
    "volumes",
    "volume_mounts",
)
#: KubeCluster settings about how it connects, waits and cleans up.
_KUBE_CLIENT_KEYS = (
    "namespace",
    "port_forward_cluster_ip",
    "create_mode",
    "shutdown_on_close",
    "resource_timeout",
    "scheduler_forward_port",
    "custom_cluster_spec",
    "quiet",
)

_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_BOOL = (bool,)
_MAP = (Mapping,)
_LIST = (list,)

#: Expected types of the settings whose type emqc checks before Dask sees them.
_TYPES: dict[str, tuple[type, ...]] = {
    # dask-jobqueue
    "queue": _STR,
    "account": _STR,
    "project": _STR,
    "walltime": _STR,
    "cores": _INT,
    "processes": _INT,
    "job_cpu": _INT,
    "ncpus": _INT,
    "job_name": _STR,
    "job_mem": _STR,
    "resource_spec": _STR,
    "interface": _STR,
    "protocol": _STR,
    "local_directory": _STR,
    "log_directory": _STR,
    "shared_temp_directory": _STR,
    "python": _STR,
    "shebang": _STR,
    "lsf_units": _STR,
    "use_stdin": _BOOL,
    "nanny": _BOOL,
    "death_timeout": _NUM,
    "job_extra_directives": _LIST,
    "job_script_prologue": _LIST,
    "job_directives_skip": _LIST,
    "worker_extra_args": _LIST,
    "scheduler_options": _MAP,
    "worker_command": (str, list),
    "config_name": _STR,
    "security": _BOOL,
    "silence_logs": (str, int),
    # LocalCluster
    "n_workers": _INT,
    "threads_per_worker": _INT,
    "scheduler_port": _INT,
    "host": _STR,
    "dashboard_address": _STR,
    "worker_dashboard_address": _STR,
    "resources": _MAP,
    "scheduler_kwargs": _MAP,
    "name": _STR,
    # KubeCluster
    "namespace": _STR,
    "image": _STR,
    "env": (Mapping, list),
    "scheduler_service_type": _STR,
    "idle_timeout": _INT,
    "resource_timeout": _INT,
    "scheduler_forward_port": _INT,
    "port_forward_cluster_ip": _BOOL,
    "shutdown_on_close": _BOOL,
    "jupyter": _BOOL,
    "quiet": _BOOL,
    "create_mode": _STR,
    "custom_cluster_spec": (str, Mapping),
    "volumes": _LIST,
    "volume_mounts": _LIST,
}

#: Where LocalCluster's meaning differs from dask-jobqueue's.
_LOCAL_TYPES: dict[str, tuple[type, ...]] = {"processes": _BOOL}

_LIST_OF_STR = (
    "job_extra_directives",
    "job_script_prologue",
    "job_directives_skip",
    "worker_extra_args",
)
_POSITIVE = ("cores", "processes", "n_workers", "threads_per_worker", "job_cpu", "ncpus")

_TYPE_NAMES = {
    _STR: "a string (quote it)",
    _INT: "a whole number",
    _NUM: "a number",
    _BOOL: "true or false",
    _MAP: "a mapping (key: value lines)",
    _LIST: "a list ([a, b] or '- a' lines)",
}

#: Placeholder scheduler address in rendered job scripts (the real one exists only at run time).
SCHEDULER_PLACEHOLDER = "tcp://<scheduler-address>:8786"


@dataclass(frozen=True)
class ClusterConfig:
    """A checked cluster configuration file.

    Parameters
    ----------
    kind : {'local', 'slurm', 'pbs', 'sge', 'lsf', 'kubernetes'} or None
        The file's ``cluster:`` key (None when it has none).
    sections : mapping of str to mapping
        Settings per kind, keys normalized to Python keyword names (``_`` for ``-``).
    scale : mapping or None
        ``{'jobs': N}`` or ``{'workers': N}``: a fixed size.
    adapt : mapping or None
        ``minimum``/``maximum`` (workers) or ``minimum_jobs``/``maximum_jobs``: an
        adaptive size between bounds.
    source : str
        The file it came from, named in every error message.
    """

    kind: str | None = None
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scale: Mapping[str, int] | None = None
    adapt: Mapping[str, int] | None = None
    source: str = "<no cluster config file>"

    def to_dict(self) -> dict[str, Any]:
        """The configuration as the mapping a file would hold."""
        out: dict[str, Any] = {}
        if self.kind is not None:
            out["cluster"] = self.kind
        out.update({kind: dict(settings) for kind, settings in self.sections.items()})
        if self.scale is not None:
            out["scale"] = dict(self.scale)
        if self.adapt is not None:
            out["adapt"] = dict(self.adapt)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<mapping>") -> ClusterConfig:
        """Check a parsed configuration file and build the record.

        Parameters
        ----------
        data : mapping
            The file's content, as ``yaml.safe_load`` returns it.
        source : str
            Name of the file, for error messages.

        Raises
        ------
        ClusterConfigError
            Naming ``source``, the key and the fix, for anything not understood.
        """
        if data is None:
            raise ClusterConfigError(
                f"{source}: the cluster config file is empty; start from one of the "
                "examples in workflows/clusters/ (local.yaml needs no settings at all)."
            )
        if not isinstance(data, Mapping):
            raise ClusterConfigError(
                f"{source}: a cluster config file must be a mapping of keys "
                f"({', '.join(_TOP_LEVEL)}), not a {type(data).__name__}."
            )
        for key in data:
            if key not in _TOP_LEVEL:
                raise ClusterConfigError(
                    f"{source}: unknown top-level key {key!r}{_did_you_mean(key, _TOP_LEVEL)}. "
                    f"A cluster config file has the keys {', '.join(_TOP_LEVEL)}; "
                    "settings of a cluster go inside its section (e.g. 'slurm:')."
                )
        kind = data.get("cluster")
        if kind is not None:
            kind = _check_kind(kind, where=f"{source}: 'cluster:'")
        sections = {}
        for name in KINDS:
            if name in data:
                sections[name] = _check_section(name, data[name], source)
        if kind is None and sections and set(sections) != {"local"}:
            raise ClusterConfigError(
                f"{source}: the file has a {', '.join(sorted(sections))} section but no "
                f"'cluster:' key saying which to start; add e.g. 'cluster: {next(iter(sections))}' "
                "(or pass --cluster KIND)."
            )
        scale = _check_scale(data.get("scale"), source) if "scale" in data else None
        adapt = _check_adapt(data.get("adapt"), source) if "adapt" in data else None
        if scale is not None and adapt is not None:
            raise ClusterConfigError(
                f"{source}: both 'scale' (a fixed size) and 'adapt' (a size between bounds) "
                "are set; keep one."
            )
        if kind is not None:
            _check_units(kind, scale, adapt, source)
        return cls(kind=kind, sections=sections, scale=scale, adapt=adapt, source=source)


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
        if self.kind == "local":
            return "distributed.LocalCluster"
        if self.kind == "kubernetes":
            return "dask_kubernetes.operator.KubeCluster"
        return f"dask_jobqueue.{_JOBQUEUE[self.kind]}"

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


# --- reading and checking a configuration file ------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping (YAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_cluster_config(path: str | Path) -> ClusterConfig:
    """Read and check a cluster configuration file.

    Parameters
    ----------
    path : str or Path
        A YAML file in the format of the module docstring (examples in
        ``workflows/clusters/``).

    Returns
    -------
    ClusterConfig

    Raises
    ------
    ClusterConfigError
        The file is missing, unreadable, not valid YAML, or has an unknown kind, key or
        a wrongly typed value; the message names the file, the key and the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = f.write_text("cluster: local\\nlocal: {memory_limit: 4GB}\\n")
    >>> read_cluster_config(f).sections["local"]
    {'memory_limit': '4GB'}
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ClusterConfigError(
            f"{source}: cluster config file not found; check the path given to "
            "--cluster-config (examples are in workflows/clusters/)."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterConfigError(
            f"{source}: cannot read the cluster config file ({exc}); it must be a "
            "readable UTF-8 YAML file."
        ) from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ClusterConfigError(
            f"{source}: not valid YAML{where}: {problem}. Check the indentation there "
            "(spaces, not tabs) and quote values containing ':' or '#'."
        ) from exc
    return ClusterConfig.from_dict(data, source=source)


def _did_you_mean(key: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(key), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_kind(kind: Any, *, where: str) -> str:
    if not isinstance(kind, str) or kind.lower() not in KINDS:
        raise ClusterConfigError(
            f"{where} unknown cluster kind {kind!r}{_did_you_mean(kind, KINDS)}; "
            f"choose one of {', '.join(KINDS)}."
        )
    return kind.lower()


@functools.cache
def _allowed_keys(kind: str) -> tuple[str, ...]:
    """Keys a section for ``kind`` may hold (for HPC kinds: read off dask-jobqueue's classes)."""
    if kind == "local":
        return _LOCAL_KEYS
    if kind == "kubernetes":
        return _KUBE_SPEC_KEYS + _KUBE_CLIENT_KEYS
    import dask_jobqueue
    from dask_jobqueue.core import Job, JobQueueCluster

    cls = getattr(dask_jobqueue, _JOBQUEUE[kind])
    names: set[str] = set()
    for function in (JobQueueCluster.__init__, cls.job_cls.__init__, Job.__init__):
        for p in inspect.signature(function).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    return tuple(sorted(names - _INTERNAL - set(_MOVED)))


def _type_error(source: str, key: str, value: Any, expected: str) -> ClusterConfigError:
    return ClusterConfigError(
        f"{source}: {key} must be {expected}, not {value!r} ({type(value).__name__}); "
        "fix that value."
    )


def _check_section(kind: str, settings: Any, source: str) -> dict[str, Any]:
    """Check one kind's section: known keys, expected types, a few values; normalize keys."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ClusterConfigError(
            f"{source}: the {kind!r} section must be a mapping of settings "
            f"(key: value lines indented under '{kind}:'), not {settings!r}."
        )
    allowed = _allowed_keys(kind)
    out: dict[str, Any] = {}
    for raw_key, value in settings.items():
        key = str(raw_key).replace("-", "_")
        where = f"{kind}.{raw_key}"
        if key in out:
            raise ClusterConfigError(f"{source}: {where} is given twice (as - and _); keep one.")
        if kind in _JOBQUEUE and key in _MOVED:
            raise ClusterConfigError(f"{source}: {where} cannot be set here; {_MOVED[key]}.")
        if key not in allowed:
            raise ClusterConfigError(
                f"{source}: unknown key {where!r}{_did_you_mean(key, allowed)}. A {kind} section "
                f"takes the keyword arguments of {ClusterPlan(kind).class_name}: "
                f"{', '.join(allowed)}."
            )
        out[key] = _check_value(kind, key, value, source=source, where=where)
    if kind == "kubernetes":
        _check_kubernetes(out, source)
    return out


def _check_value(kind: str, key: str, value: Any, *, source: str, where: str) -> Any:
    """Check one setting's type (None means: Dask's default); return it unchanged."""
    if value is None:
        return value
    if key == "walltime" and isinstance(value, int):
        # YAML reads an unquoted 04:00:00 as the sexagesimal number 14400.
        raise _type_error(source, where, value, 'a quoted string such as "04:00:00"')
    if key in ("memory", "memory_limit", "mem", "job_mem"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _type_error(source, where, value, "a size such as 32GB")
        if not (key == "memory_limit" and value == "auto"):
            try:
                parse_bytes(value)
            except (ValueError, TypeError) as exc:
                raise ClusterConfigError(
                    f"{source}: {where} is {value!r}, which is not a size; write e.g. 32GB or 500MiB."
                ) from exc
        return value
    expected = _LOCAL_TYPES.get(key) if kind == "local" else None
    expected = expected or _TYPES.get(key)
    if expected is None:
        return value
    wrong_bool = isinstance(value, bool) and bool not in expected
    if wrong_bool or not isinstance(value, expected):
        raise _type_error(source, where, value, _TYPE_NAMES.get(expected, _names(expected)))
    if key in _POSITIVE and value < 1:
        raise ClusterConfigError(f"{source}: {where} must be at least 1, not {value!r}.")
    if key in (*_LIST_OF_STR, "worker_command") and isinstance(value, list):
        bad = [item for item in value if not isinstance(item, str)]
        if bad:
            raise _type_error(source, f"{where} item", bad[0], "a string (quote it)")
    return value


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("a mapping" if t is Mapping else f"a {t.__name__}" for t in types)


def _check_kubernetes(settings: dict[str, Any], source: str) -> None:
    """Checks on KubeCluster settings that Kubernetes itself would reject much later."""
    resources = settings.get("resources")
    if resources:
        for part, quantities in resources.items():
            if part not in ("requests", "limits") or not isinstance(quantities, Mapping):
                raise ClusterConfigError(
                    f"{source}: kubernetes.resources.{part} is not understood; resources has "
                    "'requests' and 'limits', each a mapping such as {cpu: '2', memory: 8Gi}."
                )
    env = settings.get("env")
    if isinstance(env, Mapping):
        for name, value in env.items():
            if not isinstance(value, str):
                raise _type_error(source, f"kubernetes.env.{name}", value, "a string (quote it)")
    elif isinstance(env, list):
        for item in env:
            if not isinstance(item, Mapping) or "name" not in item:
                raise ClusterConfigError(
                    f"{source}: kubernetes.env as a list holds Kubernetes EnvVar objects, each "
                    f"with a 'name' (and 'value' or 'valueFrom'); {item!r} is not one."
                )
    service = settings.get("scheduler_service_type")
    if service is not None and service not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise ClusterConfigError(
            f"{source}: kubernetes.scheduler_service_type is {service!r}; use ClusterIP, "
            "NodePort or LoadBalancer."
        )
    mode = settings.get("create_mode")
    if mode is not None and mode not in ("CREATE_OR_CONNECT", "CREATE_ONLY", "CONNECT_ONLY"):
        raise ClusterConfigError(
            f"{source}: kubernetes.create_mode is {mode!r}; use CREATE_OR_CONNECT, CREATE_ONLY "
            "or CONNECT_ONLY."
        )
    volumes = settings.get("volumes") or []
    for volume in volumes:
        if not isinstance(volume, Mapping) or "name" not in volume:
            raise ClusterConfigError(
                f"{source}: kubernetes.volumes holds Kubernetes Volume objects, each with a "
                f"'name' (e.g. {{name: em-data, persistentVolumeClaim: {{claimName: emqc-data}}}}); "
                f"{volume!r} is not one."
            )
    declared = {volume["name"] for volume in volumes}
    for mount in settings.get("volume_mounts") or []:
        if not isinstance(mount, Mapping) or "name" not in mount or "mountPath" not in mount:
            raise ClusterConfigError(
                f"{source}: kubernetes.volume_mounts holds Kubernetes VolumeMount objects, each "
                f"with 'name' and 'mountPath' (e.g. {{name: em-data, mountPath: /data}}); "
                f"{mount!r} is not one."
            )
        if mount["name"] not in declared:
            raise ClusterConfigError(
                f"{source}: kubernetes.volume_mounts mounts {mount['name']!r}, which is not "
                "among kubernetes.volumes; declare it there."
            )
    if settings.get("custom_cluster_spec") is not None:
        shaping = sorted(k for k in _KUBE_SPEC_KEYS if settings.get(k) is not None)
        if shaping:
            raise ClusterConfigError(
                f"{source}: kubernetes.custom_cluster_spec is a complete DaskCluster resource, so "
                f"{', '.join(shaping)} would be ignored; set them in that spec instead, or "
                "drop custom_cluster_spec."
            )


def _check_count(value: Any, source: str, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(source, where, value, "a whole number")
    if value < minimum:
        raise ClusterConfigError(f"{source}: {where} must be at least {minimum}, not {value!r}.")
    return value


def _check_scale(value: Any, source: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in _SCALE_KEYS:
        raise ClusterConfigError(
            f"{source}: scale must be one of {{jobs: N}} (batch jobs) or {{workers: N}} "
            f"(Dask workers), not {value!r}."
        )
    ((key, count),) = value.items()
    return {key: _check_count(count, source, f"scale.{key}", minimum=1)}


def _check_adapt(value: Any, source: str) -> dict[str, int]:
    usage = (
        "adapt takes minimum and maximum (Dask workers) or minimum_jobs and maximum_jobs "
        "(batch jobs), e.g. {minimum_jobs: 1, maximum_jobs: 50}"
    )
    if not isinstance(value, Mapping) or not value:
        raise ClusterConfigError(f"{source}: {usage}; got {value!r}.")
    for key in value:
        if key not in _ADAPT_KEYS:
            raise ClusterConfigError(
                f"{source}: unknown key 'adapt.{key}'{_did_you_mean(key, _ADAPT_KEYS)}; {usage}."
            )
    if {"minimum", "maximum"} & set(value) and {"minimum_jobs", "maximum_jobs"} & set(value):
        raise ClusterConfigError(f"{source}: adapt mixes workers and jobs; {usage}.")
    out = {key: _check_count(n, source, f"adapt.{key}", minimum=0) for key, n in value.items()}
    low = out.get("minimum", out.get("minimum_jobs", 0))
    high = out.get("maximum", out.get("maximum_jobs"))
    if high is not None and (high < 1 or high < low):
        raise ClusterConfigError(
            f"{source}: adapt's maximum ({high}) must be at least 1 and at least its minimum "
            f"({low})."
        )
    return out


def _check_units(kind: str, scale: Any, adapt: Any, source: str) -> None:
    if kind in ("local", "kubernetes"):
        for key in (*(scale or {}), *(adapt or {})):
            if key.endswith("jobs"):
                raise ClusterConfigError(
                    f"{source}: a {kind} cluster has no batch jobs; size it in workers "
                    "(scale: {workers: N}, adapt: {minimum: M, maximum: N}) or with --workers."
                )


# --- from configuration and options to a plan -------------------------------------------


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


#: Dask config key (under ``kubernetes.``) of each spec-shaping KubeCluster setting.
_KUBE_CONFIG = {
    "name": "name",
    "image": "image",
    "n_workers": "count.start",
    "resources": "resources",
    "env": "env",
    "worker_command": "worker-command",
    "scheduler_service_type": "scheduler-service-type",
    "idle_timeout": "idle-timeout",
    "jupyter": "scheduler-jupyter",
}


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


# --- starting, connecting, closing ---------------------------------------------------------


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
        given = [
            flag
            for flag, value in (
                ("--cluster", cluster),
                ("--cluster-config", config),
                ("--workers", workers),
                ("--threads-per-worker", threads_per_worker),
            )
            if value is not None
        ]
        if given:
            raise ClusterConfigError(
                f"--scheduler {scheduler} connects to a running Dask cluster, which is already "
                f"sized and configured; {', '.join(given)} only apply to a cluster emqc starts. "
                "Give --scheduler or those options, not both."
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
        from distributed import LocalCluster

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
