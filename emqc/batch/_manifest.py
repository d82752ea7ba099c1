"""The study manifest ``emqc batch`` runs: which samples, where they are, how to sample them.

A manifest is a YAML file::

    study: pilot-2026            # optional name, shown in tables
    output: results/pilot        # folder (or s3:// / gs:// URL) for everything the batch writes
    seed: 20261202               # optional study seed (drawn and recorded when absent)
    block_um: 2.56               # block edge in µm (or block_vox: [z, y, x]); default 2.56
    blocks: 8                    # blocks per sample unless a sample says otherwise
    polarity: auto               # optional: auto (default), dark or bright (see `emqc score`)
    synapse_reference_per_um3: 1 # optional: synapses per µm³ of well-preserved tissue
    samples:
      - id: s01
        source: scans/s01.h5:/raw        # anything `emqc ingest` reads, or a URL
        voxel_size_nm: [10, 10, 10]
        blocks: 16                       # optional, overrides the study default
        seed: 7                          # optional, overrides the derived seed
        polarity: bright                 # optional, overrides the study's (also
                                         # synapse_reference_per_um3)

``polarity`` and ``synapse_reference_per_um3`` are the settings of ``emqc score
--polarity`` and ``--synapse-reference`` (:func:`emqc.scoring.score_block`); they are
part of every block score's declared inputs, so changing them rescores the blocks.

Relative paths (``output``, ``source``) are relative to the manifest's folder;
environment variables in them (``${EMQC_DATA}/scans/s01.h5:/raw``) are expanded.

**Seed policy.** Each sample draws its blocks with its own seed: the sample's
``seed`` if given, else one derived from the study seed and the sample id
(:func:`derive_seed`, so adding or reordering samples never changes another
sample's blocks). Without a study seed, one is drawn from the OS's secure source
on the first run and recorded in ``OUTPUT/study.json``; reruns reuse it.

Errors name the manifest, the entry (``samples[2].voxel_size_nm``), what is
wrong and what to write instead (:class:`emqc.errors.BatchManifestError`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import BatchManifestError
from ..metrics import REFERENCE_SYNAPSES_PER_UM3
from ..polarity import POLARITIES

__all__ = ["SampleEntry", "StudyManifest", "read_study_manifest", "derive_seed"]

_SETTING_KEYS = {"polarity", "synapse_reference_per_um3"}
_TOP_KEYS = {
    "study",
    "output",
    "seed",
    "block_um",
    "block_vox",
    "blocks",
    "samples",
} | _SETTING_KEYS
_SAMPLE_KEYS = {"id", "source", "voxel_size_nm", "blocks", "seed"} | _SETTING_KEYS
_REQUIRED_SAMPLE_KEYS = ("id", "source", "voxel_size_nm")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class SampleEntry:
    """One sample of a study: its id, source, voxel size (z, y, x) in nm, blocks, seed,
    and the scoring settings of :attr:`metric_settings`."""

    id: str
    source: str
    voxel_size_nm: tuple[float, float, float]
    blocks: int
    seed: int | None = None
    polarity: str = "auto"
    synapse_reference_per_um3: float = REFERENCE_SYNAPSES_PER_UM3

    @property
    def metric_settings(self) -> dict[str, Any]:
        """The :func:`emqc.scoring.score_block` settings its blocks are scored with."""
        return {
            "polarity": self.polarity,
            "synapse_reference_per_um3": self.synapse_reference_per_um3,
        }


@dataclass(frozen=True)
class StudyManifest:
    """A validated study manifest (see the module docstring)."""

    path: Path
    name: str
    output: str
    seed: int | None
    block_um: float | None
    block_vox: tuple[int, int, int] | None
    samples: tuple[SampleEntry, ...]


def derive_seed(study_seed: int, sample_id: str) -> int:
    """A sample's sampling seed from the study seed and its id (SHA-256, 63 bits).

    Deterministic and independent per sample: the same study seed and id always
    give the same seed, whatever the other samples are.
    """
    digest = hashlib.sha256(f"emqc.batch/1:{int(study_seed)}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def read_study_manifest(path: str | Path) -> StudyManifest:
    """Read and validate a study manifest.

    Parameters
    ----------
    path : path
        The YAML manifest.

    Returns
    -------
    StudyManifest

    Raises
    ------
    emqc.errors.BatchManifestError
        The file is missing or not YAML, or an entry is missing, misspelt or invalid.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BatchManifestError(f"study manifest {path} does not exist.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchManifestError(f"cannot read study manifest {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BatchManifestError(f"{path} is not valid YAML: {exc}") from exc
    check = _Checker(path)
    if not isinstance(data, Mapping):
        raise check.fail(
            "the top level", "must be a mapping with at least `output:` and `samples:`"
        )
    check.keys("the top level", data, _TOP_KEYS)
    for key in ("output", "samples"):
        if key not in data:
            raise check.fail(key, "is missing; see `emqc batch --help` for an example manifest")
    if "block_um" in data and "block_vox" in data:
        raise check.fail("block_um", "and block_vox are both given; keep one")
    default_blocks = check.count("blocks", data.get("blocks", 8))
    samples_raw = data["samples"]
    if not isinstance(samples_raw, list) or not samples_raw:
        raise check.fail("samples", "must be a non-empty list of {id, source, voxel_size_nm}")
    defaults = {"blocks": default_blocks, **check.settings("", data)}
    samples = tuple(
        check.sample(f"samples[{i}]", entry, defaults) for i, entry in enumerate(samples_raw)
    )
    seen: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s.id in seen:
            raise check.fail(f"samples[{i}].id", f"{s.id!r} is also samples[{seen[s.id]}].id")
        seen[s.id] = i
    output = check.expand("output", check.text("output", data["output"]))
    return StudyManifest(
        path=path,
        name=check.text("study", data.get("study", path.stem)),
        output=output if "://" in output else str((path.parent / output).resolve()),
        seed=None if data.get("seed") is None else check.seed("seed", data["seed"]),
        block_um=None if "block_um" not in data else check.positive("block_um", data["block_um"]),
        block_vox=None if "block_vox" not in data else check.block_vox(data["block_vox"]),
        samples=samples,
    )


class _Checker:
    """Validation of manifest entries, each failure naming the manifest and the entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> BatchManifestError:
        return BatchManifestError(f"{self.path}: {where} {problem}.")

    def keys(self, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(map(str, data)) - allowed)
        if unknown:
            raise self.fail(
                where,
                f"has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            )

    def text(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def expand(self, where: str, value: str) -> str:
        expanded = os.path.expandvars(value)
        unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
        if unset:
            raise self.fail(
                where, f"uses the environment variable {unset[0]}, which is not set; set it or "
                "write the path out",
            )  # fmt: skip
        return expanded

    def count(self, where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(where, f"must be a whole number of blocks >= 1, got {value!r}")
        return value

    def seed(self, where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise self.fail(where, f"must be a whole number from 0 to 2**63 - 1, got {value!r}")
        return value

    def positive(self, where: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.fail(where, f"must be a number > 0, got {value!r}")
        return float(value)

    def block_vox(self, value: Any) -> tuple[int, int, int]:
        ok = isinstance(value, list) and len(value) == 3
        if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 8 for v in value):
            raise self.fail("block_vox", f"must be [z, y, x] whole numbers >= 8, got {value!r}")
        return (value[0], value[1], value[2])

    def voxel_size(self, where: str, value: Any) -> tuple[float, float, float]:
        ok = isinstance(value, list) and len(value) == 3
        if not ok or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
            raise self.fail(where, f"must be [z, y, x] in nm, e.g. [10, 10, 10]; got {value!r}")
        if not all(0 < v <= 10_000 for v in value):
            raise self.fail(where, f"must hold sizes in nm between 0 and 10000, got {value!r}")
        return (float(value[0]), float(value[1]), float(value[2]))

    def settings(self, where: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """The scoring settings given in ``data`` (the top level, or a sample)."""
        out: dict[str, Any] = {}
        at = f"{where}." if where else ""
        if "polarity" in data:
            if data["polarity"] not in POLARITIES:
                raise self.fail(
                    f"{at}polarity",
                    f"must be one of {', '.join(POLARITIES)}, got {data['polarity']!r}",
                )
            out["polarity"] = data["polarity"]
        if "synapse_reference_per_um3" in data:
            key = f"{at}synapse_reference_per_um3"
            out["synapse_reference_per_um3"] = self.positive(key, data["synapse_reference_per_um3"])
        return out

    def sample(self, where: str, entry: Any, defaults: dict[str, Any]) -> SampleEntry:
        if not isinstance(entry, Mapping):
            raise self.fail(
                where, f"must be a mapping {{id, source, voxel_size_nm}}, got {entry!r}"
            )
        self.keys(where, entry, _SAMPLE_KEYS)
        for key in _REQUIRED_SAMPLE_KEYS:
            if key not in entry:
                raise self.fail(f"{where}.{key}", "is missing")
        sid = self.text(f"{where}.id", entry["id"])
        if not _ID.match(sid):
            raise self.fail(
                f"{where}.id",
                f"{sid!r} must be letters, digits, '.', '_' or '-' (at most 64, first a letter "
                "or digit): it names the sample's output folder",
            )
        source = self.expand(f"{where}.source", self.text(f"{where}.source", entry["source"]))
        return SampleEntry(
            id=sid,
            source=source if "://" in source else _relative_to(self.path.parent, source),
            voxel_size_nm=self.voxel_size(f"{where}.voxel_size_nm", entry["voxel_size_nm"]),
            blocks=self.count(f"{where}.blocks", entry.get("blocks", defaults["blocks"])),
            seed=None if entry.get("seed") is None else self.seed(f"{where}.seed", entry["seed"]),
            **({k: v for k, v in defaults.items() if k != "blocks"} | self.settings(where, entry)),
        )


def _relative_to(folder: Path, source: str) -> str:
    """A source spec with its file part made absolute (``file.h5:/raw`` keeps ``:/raw``)."""
    file_part, sep, dataset = source.partition(":/") if ":/" in source else (source, "", "")
    return str((folder / Path(file_part).expanduser()).absolute()) + sep + dataset
