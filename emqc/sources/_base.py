"""The interface every volume reader implements.

A :class:`VolumeSource` is a small, picklable description of a 3D volume on disk
(or on object storage): it knows the volume's shape, voxel type and, where the
format stores it, the voxel size; it reads any box of voxels on demand and
opens its files anew on every read, so Dask can ship it to worker processes and
``dask.array.from_array`` can wrap it directly. Axis order is always (z, y, x).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ._util import box_shape, checked

__all__ = ["VolumeSource", "fit_read_chunks"]

#: Default memory budget of one read task, in bytes. Two tasks run per core.
READ_BUDGET_BYTES = 128 * 1024**2


class VolumeSource(ABC):
    """A readable (Z, Y, X) volume.

    Subclasses set :attr:`spec`, :attr:`format`, :attr:`shape`, :attr:`dtype`,
    :attr:`voxel_size_nm` and :attr:`native_chunks` in ``__init__`` (after
    checking the input and raising an :mod:`emqc.errors` error naming the file),
    and implement :meth:`_read` and :meth:`files`.
    """

    #: What the user gave (path, ``file.h5:/dataset``, glob or URL).
    spec: str
    #: Short format name, e.g. ``"tiff-stack"``, ``"hdf5"``, ``"precomputed"``.
    format: str
    #: Volume shape (Z, Y, X).
    shape: tuple[int, int, int]
    #: Voxel type as stored in the source.
    dtype: np.dtype
    #: Voxel size (z, y, x) in nanometres from the source's own metadata, or None.
    voxel_size_nm: tuple[float, float, float] | None
    #: Shape of the unit the format decodes at once (e.g. ``(1, Y, X)`` for a
    #: stack of compressed slices, the chunk shape of a chunked array).
    native_chunks: tuple[int, int, int]

    ndim = 3

    def read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Return the voxels of one box as a C-contiguous (Z, Y, X) ndarray of :attr:`dtype`.

        The slices have non-negative start/stop within :attr:`shape` and step 1.
        An empty box gives an empty array without touching the source; a reader
        that returns a block of the wrong shape (the source changed since it was
        opened) raises :class:`emqc.errors.CorruptSourceError`.
        """
        shape = box_shape(z, y, x)
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)
        return checked(self._read(z, y, x), z, y, x, self.dtype, self.spec)

    @abstractmethod
    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        """Read a non-empty box (what each format implements).

        A read that fails because a file is truncated or corrupt raises
        :class:`emqc.errors.CorruptSourceError` naming that file.
        """

    @abstractmethod
    def files(self) -> list[Path]:
        """Local files whose bytes make up the source (for SHA-256 provenance).

        Empty for remote sources (``gs://``, ``s3://``), whose bytes are not re-read.
        """

    def describe(self) -> dict[str, Any]:
        """JSON-serializable provenance: format, spec, shape, dtype, voxel size."""
        return {
            "format": self.format,
            "spec": self.spec,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "voxel_size_nm": None if self.voxel_size_nm is None else list(self.voxel_size_nm),
        }

    # -- array protocol, so ``dask.array.from_array(source, ...)`` works -----------------
    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        if not isinstance(key, tuple) or len(key) != 3:
            raise TypeError(f"expected a tuple of 3 slices, got {key!r}")
        z, y, x = (slice(*s.indices(n)[:2]) for s, n in zip(key, self.shape, strict=True))
        return self.read(z, y, x)

    def read_chunks(
        self, target: tuple[int, int, int], *, budget_bytes: int = READ_BUDGET_BYTES
    ) -> tuple[int, int, int]:
        """Read-task shape for writing chunks of shape ``target``.

        See :func:`fit_read_chunks`.
        """
        return fit_read_chunks(
            target, self.native_chunks, self.shape, self.dtype.itemsize, budget_bytes=budget_bytes
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.format} {self.spec!r} shape={self.shape} {self.dtype}>"
        )


def fit_read_chunks(
    target: tuple[int, int, int],
    native: tuple[int, int, int],
    shape: tuple[int, int, int],
    itemsize: int,
    *,
    budget_bytes: int = READ_BUDGET_BYTES,
) -> tuple[int, int, int]:
    """Shape of the boxes to read so that each native unit is decoded about once.

    Each axis is read in a multiple of the target chunk (so splitting a read box
    into target chunks never crosses a box), grown towards the native unit (so a
    compressed slice or chunk is not decoded once per target chunk), and y, then
    x, then z are shrunk when the box would exceed ``budget_bytes``.

    Parameters
    ----------
    target : (3,) tuple of int
        Chunk shape of the output array.
    native : (3,) tuple of int
        Shape the source decodes at once.
    shape : (3,) tuple of int
        Volume shape.
    itemsize : int
        Bytes per voxel.
    budget_bytes : int
        Upper bound on one box's size (unless one target chunk is larger).

    Returns
    -------
    (3,) tuple of int
    """
    read = []
    for t, nat, n in zip(target, native, shape, strict=True):
        t = min(t, n)
        k = math.ceil(min(nat, n) / t)
        read.append(min(k * t, n))
    # Shrink y first (image rows are stored contiguously, so a band of rows is the
    # cheapest partial read of a slice), then x, in whole target chunks.
    for axis in (1, 2, 0):
        t = min(target[axis], shape[axis])
        while read[axis] > t and math.prod(read) * itemsize > budget_bytes:
            read[axis] = max(t, (read[axis] // t // 2) * t)
    return (read[0], read[1], read[2])
