"""What each kind's section of a cluster configuration file may hold, and its checks.

A section (``local:``, ``slurm:``, ..., ``kubernetes:``) holds the keyword arguments of
the Dask class for that kind. :func:`_check_section` checks one: known keys (for HPC kinds
read off dask-jobqueue's own signatures), the expected type of each value, sizes that
parse, and the Kubernetes settings Kubernetes itself would reject only much later. Every
error names the file, the key and the fix. The lowest layer of the cluster modules: the
whole-file checks are in :mod:`emqc.batch._cluster_config`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Mapping
from typing import Any

from dask.utils import parse_bytes

from emqc.errors import ClusterConfigError

#: Every cluster kind ``--cluster`` and the file's ``cluster:`` key accept.
KINDS = ("local", "slurm", "pbs", "sge", "lsf", "kubernetes")

#: The dask_jobqueue class for each HPC kind.
_JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}


def _class_name(kind: str) -> str:
    """Dotted name of the Dask class that starts a ``kind`` cluster."""
    if kind == "local":
        return "distributed.LocalCluster"
    if kind == "kubernetes":
        return "dask_kubernetes.operator.KubeCluster"
    return f"dask_jobqueue.{_JOBQUEUE[kind]}"


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
                f"takes the keyword arguments of {_class_name(kind)}: "
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
