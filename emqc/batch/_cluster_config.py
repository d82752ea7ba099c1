"""Reading and checking a cluster configuration file into a :class:`ClusterConfig`.

Configuration file
------------------
::

    cluster: slurm            # local | slurm | pbs | sge | lsf | kubernetes
    slurm:                    # keyword arguments of dask_jobqueue.SLURMCluster
      queue: normal
      account: lab123
      cores: 8
      processes: 4
      memory: 48GB
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

Each section is checked by :mod:`emqc.batch._cluster_sections`; this module checks the
file as a whole (its top-level keys, ``cluster:``, ``scale`` and ``adapt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emqc.errors import ClusterConfigError

from ._cluster_sections import KINDS, _check_kind, _check_section, _did_you_mean, _type_error

__all__ = ["KINDS", "ClusterConfig", "read_cluster_config"]

_TOP_LEVEL = ("cluster", *KINDS, "scale", "adapt")

_SCALE_KEYS = ("jobs", "workers")
_ADAPT_KEYS = ("minimum", "maximum", "minimum_jobs", "maximum_jobs")


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
