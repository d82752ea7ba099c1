"""MRC / CCP4 volumes (``.mrc``, ``.rec``, ``.st``, ``.map``) through mrcfile."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.utils import dtype_from_mode

from emqc.errors import CorruptSourceError, UnsupportedSourceError

from ._base import VolumeSource
from ._util import check_dtype, voxel_size

#: Exceptions mrcfile raises on a malformed header or short data block.
_MRC_ERRORS = (ValueError, OSError, EOFError)


class MrcSource(VolumeSource):
    """An MRC file's data block as (Z, Y, X) = (sections, rows, columns).

    The header is validated strictly (mrcfile's non-permissive mode) and the file
    must be long enough for the data it declares. Reads memory-map the file
    (``mrcfile.mmap``) and copy the box out.

    Voxel size: the header's ``voxel_size`` (cell size / sampling, in Å, x y z)
    converted to nm and put in (z, y, x) order. None when any component is 0 (cell
    not set) or all three are exactly 1 Å, which IMOD and others write when the
    pixel size is unknown (no FIB-SEM volume has 1 Å voxels).
    """

    format = "mrc"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        path = Path(spec).expanduser().resolve()
        self._path = str(path)
        try:
            with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
                h = mrc.header
                raw = dtype_from_mode(int(h.mode))
                # Mode 101 packs two 4-bit voxels per byte.
                nbytes = int(h.nx) * int(h.ny) * int(h.nz) * raw.itemsize
                need = 1024 + int(h.nsymbt) + (nbytes // 2 if int(h.mode) == 101 else nbytes)
                vox_xyz = mrc.voxel_size
                vox = (float(vox_xyz.z), float(vox_xyz.y), float(vox_xyz.x))
            size = os.path.getsize(path)
            if size < need:
                raise CorruptSourceError(
                    f"{path} is truncated: its header declares {need:,} bytes "
                    f"({int(h.nx)} × {int(h.ny)} × {int(h.nz)} voxels of {raw}) but the file has "
                    f"only {size:,}. Re-export or re-copy that file and rerun."
                )
            with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
                shape, dtype = mrc.data.shape, mrc.data.dtype
        except CorruptSourceError:
            raise
        except _MRC_ERRORS as exc:
            raise CorruptSourceError(
                f"{path} is not a readable MRC file: it is truncated or corrupt (mrcfile: {exc}). "
                "Re-export or re-copy that file and rerun."
            ) from exc
        if len(shape) != 3:
            what = "one 2D image" if len(shape) == 2 else f"an array of shape {shape}"
            raise UnsupportedSourceError(
                f"{path} holds {what}, not a 3D volume; emqc reads one 3D volume per MRC file. "
                "Give a 3D MRC file (or a folder of slices) instead."
            )
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.dtype = check_dtype(dtype, str(path))
        self.voxel_size_nm = None if vox == (1.0, 1.0, 1.0) else voxel_size(v / 10 for v in vox)
        self.native_chunks = (1, 1, self.shape[2])

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        try:
            with mrcfile.mmap(self._path, mode="r", permissive=False) as mrc:
                out = np.array(mrc.data[z, y, x], dtype=self.dtype)
        except _MRC_ERRORS as exc:
            raise CorruptSourceError(
                f"{self._path} could not be read: it is truncated or corrupt (mrcfile: {exc}). "
                "Re-export or re-copy that file and rerun."
            ) from exc
        return out

    def files(self) -> list[Path]:
        return [Path(self._path)]
