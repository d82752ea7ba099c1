"""Readers that open any supported 3D EM volume lazily, as (Z, Y, X).

:func:`open_source` picks the reader from what the user gives (a folder or glob of
TIFF/PNG slices, a multipage TIFF, an MRC file, ``file.h5:/dataset``, a Zarr or
OME-Zarr folder, an N5 dataset, a ``precomputed://`` URL) and returns a
:class:`VolumeSource`: a small picklable object that knows the shape, voxel type
and (where the format records it) voxel size, and reads any box on demand, so
``dask.array.from_array(src, chunks=src.read_chunks(target))`` wraps it directly.
"""

from ._array import ArraySource
from ._base import VolumeSource, fit_read_chunks
from ._open import SUPPORTED_FORMATS, open_source

__all__ = ["open_source", "VolumeSource", "SUPPORTED_FORMATS", "ArraySource", "fit_read_chunks"]
