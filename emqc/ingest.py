"""Ingest: any supported volume → a verified OME-Zarr image with a pyramid and a manifest.

The conversion streams through Dask, so peak memory depends on the chunk and
read-box sizes, not on the volume's size:

1. Open the source lazily (:func:`emqc.sources.open_source`) and settle the voxel
   size (the file's metadata, or ``voxel_size_nm``; a missing one is an error).
2. For anything but ``uint8``, one streaming pass gathers the statistics of the
   stated intensity rule (:mod:`emqc.intensity`).
3. Level 0 is read in boxes that decode each source slice or chunk about once
   (:meth:`VolumeSource.read_chunks`), converted to ``uint8``, split into
   128³ chunks and written; the SHA-256 of every source file is computed in the
   same graph.
4. Each pyramid level is computed from the stored level above it (2× block mean).
5. Every stored file is hashed into ``emqc-manifest.json`` with the provenance.

All of it is written into a hidden staging folder next to ``DEST`` that is
renamed to ``DEST`` only once the manifest is in place. An interrupted ingest
(killed, disk full) therefore never leaves a ``DEST`` that looks complete; the
next run finds the staging folder, says so, removes it and starts over. Ingest is
deterministic: the same source and parameters give the same root digest.

With ``resume=True`` (what ``emqc batch`` and ``emqc ingest --resume`` use) every
stored chunk is a unit of work recorded in a journal beside ``DEST``
(:mod:`emqc._chunk_journal`): a run killed part-way is resumed by the next, which
keeps the chunks whose stored voxels still match their records (when the source
files and parameters are unchanged) and writes only the rest. The result is
byte-identical to an uninterrupted ingest.

``DEST`` (and a Zarr/OME-Zarr source) may also be an object-store URL
(``s3://bucket/sample01.ome.zarr``, ``gs://...``; endpoint and credentials as in
:mod:`emqc.storage`). A store has no rename, so there the manifest alone marks
completion: the objects are written in place (or, when ``overwrite`` replaces a
volume, under a staging prefix and copied server-side), hashed back from the store,
and the manifest is PUT last; a failure removes every object written, and a
killed run leaves objects without a manifest that readers refuse and the next
ingest removes (the protocol is in :mod:`emqc._atomic`). The root digest equals
that of the same ingest to local disk: the same bytes are stored under the same keys.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import numpy as np

from . import __version__, storage
from ._atomic import discard_output, prepare_output, publish_output
from ._chunk_journal import (
    ChunkJournal,
    discard_journal,
    source_fingerprint,
)
from ._ingest_levels import write_levels
from .errors import IntegrityError, MissingVoxelSizeError, OutOfSpaceError
from .intensity import (
    IntensityRule,
    check_dtype,
)
from .manifest import (
    MANIFEST_NAME,
    FileDigest,
    Manifest,
    digest_tree,
    implied_chunk_files,
    write_manifest,
)
from .omezarr import (
    DEFAULT_CHUNK,
    ImageLayout,
    create_image,
    reopen_image,
)
from .pyramid import plan_levels
from .sources import VolumeSource, open_source

__all__ = ["ingest", "IngestResult", "EmqcWarning", "staging_path"]

log = logging.getLogger("emqc")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class EmqcWarning(UserWarning):
    """Suspicious but legal input (e.g. a voxel size that looks like micrometres)."""


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` wrote."""

    path: Path | str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float]
    n_levels: int
    n_files: int
    root_digest: str
    intensity_rule: IntensityRule
    source_format: str
    seconds: float
    chunks_written: int = 0
    chunks_reused: int = 0

    @property
    def megavoxels_per_second(self) -> float:
        return math.prod(self.shape) / 1e6 / max(self.seconds, 1e-9)


def staging_path(dest: Path) -> Path:
    """The hidden folder an ingest into ``dest`` writes before renaming it to ``dest``."""
    return dest.with_name(f".{dest.name}.emqc-partial")


#: The temporary file zarr's local store writes a chunk to before renaming it into
#: place: ``<key>.<uuid4 hex>.partial``.
_STORE_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_store_temporaries(target: Any) -> int:
    """Delete the chunk temporaries a killed writer left in a local volume; return how many.

    A run killed while zarr was writing a chunk leaves ``<key>.<hex>.partial`` beside it.
    A resumed ingest must not count it as part of the volume (its manifest lists every
    file), so it is removed before the ingest goes on. Object stores write each object
    whole and leave nothing.
    """
    if not isinstance(target, Path) or not target.is_dir():
        return 0
    stale = [
        p for p in target.rglob("*.partial") if _STORE_TEMPORARY.search(p.name) and p.is_file()
    ]
    for p in stale:
        p.unlink()
    return len(stale)


def ingest(
    source: str | Path | VolumeSource,
    dest: str | Path,
    *,
    voxel_size_nm: tuple[float, float, float] | None = None,
    chunk: int = DEFAULT_CHUNK,
    overwrite: bool = False,
    operator: str | None = None,
    intensity_range: tuple[float, float] | None = None,
    progress: bool = True,
    resume: bool = False,
) -> IngestResult:
    """Convert a volume into an emqc OME-Zarr image with pyramid and manifest.

    Parameters
    ----------
    source : str, Path or VolumeSource
        Anything :func:`emqc.sources.open_source` accepts (folder or glob of TIFF/PNG
        slices, multipage TIFF, MRC, ``file.h5:/dataset``, Zarr/N5, ``precomputed://``).
    dest : str or Path
        Output folder (must not exist unless ``overwrite``), or an object-store URL
        such as ``s3://bucket/sample01.ome.zarr`` (nothing may be stored under it
        unless ``overwrite``).
    voxel_size_nm : (3,) tuple of float, optional
        Voxel size (z, y, x) in nm. Overrides the source's metadata (with a warning
        when they differ); required when the source records none.
    chunk : int, optional
        Chunk edge in voxels (default 128).
    overwrite : bool, optional
        Replace an existing emqc volume at ``dest``; the old one is kept until the
        new one is complete.
    operator : str, optional
        Who ran the ingest, recorded in the provenance.
    intensity_range : (lo, hi), optional
        Input values mapped to 0 and 255, instead of the stated rule's statistics.
    progress : bool, optional
        Show progress bars on standard error.
    resume : bool, optional
        Journal every chunk written, and reuse the verified chunks of an earlier run
        into ``dest`` that was killed before it finished (see the module docstring).
        An ingest that fails with an error still removes everything it wrote.

    Returns
    -------
    IngestResult

    Raises
    ------
    emqc.errors.EmqcError
        Subclasses for every bad input (see :mod:`emqc.errors`);
        :class:`~emqc.errors.StorageError` when an object store cannot be used.
    """
    t0 = time.perf_counter()
    src = source if isinstance(source, VolumeSource) else open_source(str(source))
    voxel, voxel_origin = _resolve_voxel_size(src, voxel_size_nm)
    if not isinstance(chunk, int) or chunk < 8:
        raise ValueError(f"chunk must be an integer >= 8, got {chunk!r}")
    check_dtype(src.dtype, where=src.spec)
    dest = storage.as_location(dest)
    if isinstance(dest, Path):
        dest = dest.absolute()
    layout = ImageLayout(tuple(plan_levels(src.shape, voxel)), (chunk, chunk, chunk))
    provenance = _provenance(layout, operator, voxel, voxel_origin)
    storage.probe(dest, "write")  # a store that cannot be used is named before the journal
    journal = _journal(src, dest, provenance, intensity_range) if resume else None
    resuming = journal is not None and journal.matches()
    if not resuming:  # a journal left by another plan (or a plain ingest) is out of date
        with storage.storage_errors(dest, "write"):
            discard_journal(dest)
    target = prepare_output(dest, overwrite=overwrite, marker=MANIFEST_NAME, resume=resuming)
    if resuming:
        remove_store_temporaries(target)
    if isinstance(dest, Path):
        _warn_if_short_of_space(dest, src)

    try:
        with storage.storage_errors(dest, "write"):
            manifest, files, rule, counts = _write_all(
                src, target, dest, layout, intensity_range, progress, provenance, journal, resuming
            )
    except OSError as exc:
        discard_output(target, dest)
        discard_journal(dest)
        if exc.errno in _NO_SPACE:
            raise OutOfSpaceError(
                f"ran out of disk space writing {dest} ({os.strerror(exc.errno or 0)}). Nothing was "
                f"kept: the partial output was removed and the source is untouched. Free at least "
                f"{_human_bytes(_estimate_bytes(src))} on that disk (or choose another DEST) and rerun."
            ) from exc
        raise
    except BaseException:
        discard_output(target, dest)
        discard_journal(dest)
        raise
    return IngestResult(
        path=dest,
        shape=src.shape,
        voxel_size_nm=voxel,
        n_levels=len(layout.levels),
        n_files=len(files),
        root_digest=manifest.root_digest,
        intensity_rule=rule,
        source_format=src.format,
        seconds=time.perf_counter() - t0,
        chunks_written=counts[0],
        chunks_reused=counts[1],
    )


def _journal(
    src: VolumeSource,
    dest: Path | str,
    provenance: dict[str, Any],
    intensity_range: tuple[float, float] | None,
) -> ChunkJournal | None:
    """The chunk journal of a resumable ingest; ``None`` when the source cannot be pinned."""
    files = source_fingerprint(src.files())
    if files is None:
        log.info("%s has no local files to pin, so its ingest cannot be resumed", src.spec)
        return None
    plan = {
        "emqc_version": __version__,
        "source": src.describe(),
        "source_files": files,
        "voxel_size_nm": provenance["voxel_size_nm"],
        "chunk": provenance["chunk"],
        "levels": provenance["levels"],
        "intensity_range": None if intensity_range is None else list(intensity_range),
    }
    return ChunkJournal(dest, plan)


def _write_all(
    src: VolumeSource,
    target: Path | str,
    dest: Path | str,
    layout: ImageLayout,
    intensity_range: tuple[float, float] | None,
    progress: bool,
    provenance: dict[str, Any],
    journal: ChunkJournal | None,
    resuming: bool,
) -> tuple[Manifest, list[FileDigest], IntensityRule, tuple[int, int]]:
    """Steps 2–5 of the module docstring into ``target``, then publish at ``dest``.

    Also returns how many chunks were written and how many reused (``journal``;
    ``resuming``: it matched this ingest's plan).
    """
    arrays = reopen_image(target, layout) if resuming else None
    if arrays is None:
        if resuming:  # killed while the image itself was being created: create it again
            log.warning("the unfinished image in %s cannot be reopened; creating it again", target)
        if journal is not None:
            journal.start()
        arrays = create_image(target, layout)
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        rule, source_digests, counts = write_levels(
            src, target, arrays, layout, intensity_range, progress, journal
        )
    files = digest_tree(target)
    _check_all_chunks_written(target, files)
    if journal is not None:  # before publishing: a complete volume never has a journal beside it
        journal.remove()
    provenance = {
        **provenance,
        "source": {**src.describe(), "files": source_digests},
        "intensity_rule": rule.to_dict(),
    }
    manifest = publish_output(
        target,
        dest,
        {f.path: f.size for f in files},
        lambda loc: write_manifest(loc, files, provenance),
        marker=MANIFEST_NAME,
    )
    return manifest, files, rule, counts


def _provenance(
    layout: ImageLayout,
    operator: str | None,
    voxel: tuple[float, float, float],
    voxel_origin: str,
) -> dict[str, Any]:
    """The provenance fields known before the voxels are written (in the manifest's order)."""
    return {
        "emqc_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "operator": operator,
        "source": None,
        "voxel_size_nm": list(voxel),
        "voxel_size_origin": voxel_origin,
        "intensity_rule": None,
        "chunk": list(layout.chunk),
        "levels": [
            {
                "shape": list(lv.shape),
                "voxel_size_nm": list(lv.voxel_size_nm),
                "factors": list(lv.factors),
            }
            for lv in layout.levels
        ],
    }


def _resolve_voxel_size(
    src: VolumeSource, given: tuple[float, float, float] | None
) -> tuple[tuple[float, float, float], str]:
    if given is not None:
        if len(given) != 3 or not all(math.isfinite(v) and v > 0 for v in given):
            raise ValueError(
                f"voxel_size_nm must be three positive numbers (z, y, x), got {given!r}"
            )
        given = (float(given[0]), float(given[1]), float(given[2]))
        meta = src.voxel_size_nm
        if meta is not None and not np.allclose(meta, given, rtol=1e-3):
            warnings.warn(
                f"--voxel-size {given} nm overrides the voxel size {tuple(meta)} nm recorded in "
                f"{src.spec}; check which one is right.",
                EmqcWarning,
                stacklevel=3,
            )
        voxel, origin = given, "given"
    elif src.voxel_size_nm is not None:
        voxel, origin = tuple(float(v) for v in src.voxel_size_nm), f"{src.format} metadata"
    else:
        raise MissingVoxelSizeError(
            f"{src.spec} does not record its voxel size ({src.format} source). Give it in nanometres "
            "as z,y,x with --voxel-size, for example `--voxel-size 8,8,8` for 8 nm isotropic FIB-SEM "
            "(API: voxel_size_nm=(8, 8, 8))."
        )
    if any(v < 0.1 or v > 1000 for v in voxel):
        warnings.warn(
            f"voxel size {voxel} nm is outside the usual EM range (0.1–1000 nm); was it given in "
            "micrometres or ångström instead of nanometres?",
            EmqcWarning,
            stacklevel=3,
        )
    return voxel, origin  # type: ignore[return-value]


def _check_all_chunks_written(staging: Path | str, files: list) -> None:
    missing = sorted(implied_chunk_files(staging) - {f.path for f in files})
    if missing:
        raise IntegrityError(
            f"ingest into {staging} finished without writing {len(missing)} chunk(s) "
            f"(first: {missing[0]}); this is a bug in emqc. The partial output was removed."
        )


def _estimate_bytes(src: VolumeSource) -> float:
    """Upper estimate of the output size: uint8 level 0 plus an 8/7 pyramid, uncompressed."""
    return math.prod(src.shape) * 8 / 7


def _warn_if_short_of_space(dest: Path, src: VolumeSource) -> None:
    free = shutil.disk_usage(dest.parent if dest.parent.exists() else Path.cwd()).free
    need = _estimate_bytes(src)
    if free < need:
        warnings.warn(
            f"{dest.parent} has {_human_bytes(free)} free and the volume needs up to "
            f"{_human_bytes(need)} before compression; ingest may run out of space.",
            EmqcWarning,
            stacklevel=3,
        )


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
