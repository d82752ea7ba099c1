"""An ingested volume, opened for reading only if it is whole.

:func:`open_volume` is how every later stage (sampling, scoring, review) reads
a volume. It refuses a volume without its manifest (an interrupted ingest), and
checks that every recorded file is present with its recorded size (or, with
``verify="digests"``, re-hashes everything). Reads then go through
:class:`emqc.omezarr.StrictStore`, so a chunk that disappears later raises
:class:`~emqc.errors.MissingChunkError` instead of reading as zeros.

A volume on object storage opens the same way from its URL
(``open_volume("s3://bucket/sample01.ome.zarr")``; endpoint and credentials as in
:mod:`emqc.storage`): the manifest and listing are read from the store, and
chunks are fetched on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dask.array as da
import numpy as np
import zarr

from . import storage
from .manifest import Manifest, read_manifest, verify_volume
from .omezarr import ImageLayout, open_image

__all__ = ["Volume", "open_volume"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A verified, read-only emqc volume.

    Attributes
    ----------
    path : Path or str
        The volume folder, or its URL on an object store.
    manifest : Manifest
        File digests, root digest and provenance.
    layout : ImageLayout
        Pyramid levels with their shapes and voxel sizes.
    arrays : tuple of zarr.Array
        One read-only array per level (strict: missing chunks raise).
    """

    path: Path | str
    manifest: Manifest
    layout: ImageLayout
    arrays: tuple[zarr.Array, ...]

    @property
    def root_digest(self) -> str:
        """Content digest of the whole volume (see :mod:`emqc.manifest`)."""
        return self.manifest.root_digest

    @property
    def shape(self) -> tuple[int, int, int]:
        """Level-0 shape (Z, Y, X)."""
        return self.layout.shape

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        """Level-0 voxel size (z, y, x) in nm."""
        return self.layout.voxel_size_nm

    @property
    def n_levels(self) -> int:
        return len(self.arrays)

    def to_dask(self, level: int = 0) -> da.Array:
        """The level as a Dask array chunked like its storage."""
        arr = self.arrays[self._check_level(level)]
        return da.from_zarr(arr, chunks=arr.chunks)

    def read(
        self, origin: tuple[int, int, int], shape: tuple[int, int, int], *, level: int = 0
    ) -> np.ndarray:
        """Read a box of voxels.

        Parameters
        ----------
        origin : (3,) tuple of int
            Corner (z, y, x) in voxels of ``level``.
        shape : (3,) tuple of int
            Box shape in voxels.
        level : int, optional
            Pyramid level (0 = full resolution).

        Returns
        -------
        (Z, Y, X) ndarray of uint8

        Raises
        ------
        ValueError
            When the box is not wholly inside the level.
        emqc.errors.MissingChunkError
            When a chunk the box needs is missing from storage.
        """
        arr = self.arrays[self._check_level(level)]
        if any(
            o < 0 or s < 1 or o + s > n for o, s, n in zip(origin, shape, arr.shape, strict=True)
        ):
            raise ValueError(
                f"box origin={tuple(origin)} shape={tuple(shape)} is not inside level {level} "
                f"of shape {arr.shape}"
            )
        sl = tuple(slice(o, o + s) for o, s in zip(origin, shape, strict=True))
        return np.asarray(arr[sl])

    def _check_level(self, level: int) -> int:
        if not 0 <= level < len(self.arrays):
            raise ValueError(f"level must be in 0..{len(self.arrays) - 1}, got {level}")
        return level


def open_volume(
    path: str | Path, *, verify: Literal["presence", "digests", "none"] = "presence"
) -> Volume:
    """Open an ingested volume after checking that it is whole.

    Parameters
    ----------
    path : str or Path
        Folder written by ``emqc ingest``, or its URL on an object store
        (``s3://bucket/vol.ome.zarr``, ``gs://...``).
    verify : {"presence", "digests", "none"}
        ``presence`` (default) checks every file exists with its recorded size;
        ``digests`` re-hashes every file; ``none`` only reads the manifest.

    Returns
    -------
    Volume

    Raises
    ------
    emqc.errors.IncompleteVolumeError
        No manifest: the ingest did not finish.
    emqc.errors.IntegrityError
        A file is missing, altered or unexpected.
    emqc.errors.StorageError
        The object store cannot be read (bucket missing, access denied, unreachable).
    """
    if verify not in ("presence", "digests", "none"):
        raise ValueError(f"verify must be 'presence', 'digests' or 'none', got {verify!r}")
    path = storage.as_location(path)
    if verify == "none":
        manifest = read_manifest(path)
    else:
        report = verify_volume(path, mode=verify)
        report.raise_for_problems()
        manifest = report.manifest
    layout, arrays = open_image(path, strict=True)
    return Volume(path, manifest, layout, tuple(arrays))
