"""A numpy array in memory as a volume source (for synthetic data, notebooks and tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._base import VolumeSource

__all__ = ["ArraySource"]


class ArraySource(VolumeSource):
    """Wrap a (Z, Y, X) array so it can be ingested like a file.

    Parameters
    ----------
    array : (Z, Y, X) ndarray
    voxel_size_nm : (3,) tuple of float, optional
    name : str, optional
        How provenance names the array (e.g. ``"synthetic neuropil, seed 3"``).
    """

    format = "array"

    def __init__(
        self, array: np.ndarray, *, voxel_size_nm=None, name: str = "in-memory array"
    ) -> None:  # type: ignore[no-untyped-def]
        array = np.asarray(array)
        if array.ndim != 3:
            raise ValueError(f"array must be 3D (Z, Y, X), got shape {array.shape}")
        self._array = array
        self.spec = name
        self.shape = tuple(int(n) for n in array.shape)  # type: ignore[assignment]
        self.dtype = array.dtype
        self.voxel_size_nm = (
            None if voxel_size_nm is None else tuple(float(v) for v in voxel_size_nm)
        )  # type: ignore[assignment]
        self.native_chunks = self.shape

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        return np.array(self._array[z, y, x])

    def files(self) -> list[Path]:
        return []

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": self.spec}
