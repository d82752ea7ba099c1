"""One TIFF file holding a 3D volume: multipage TIFF, ImageJ hyperstack, 3D OME-TIFF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from emqc.errors import CorruptSourceError, EmqcError, UnsupportedSourceError

from . import _tiffmeta as tm
from ._base import VolumeSource
from ._util import box_shape, check_dtype


class MultipageTiffSource(VolumeSource):
    """The first image series of a TIFF file, as (Z, Y, X).

    tifffile groups the file's pages into a series (a plain multipage file, an
    ImageJ hyperstack or an OME-TIFF image); axes of length 1 (time, channel) are
    dropped, and what is left must be a stack of 2D greyscale pages. A file holding
    a single 2D image is refused: give the folder or glob of slices instead.

    Reading: when the series' pixels lie uncompressed and contiguous in the file
    (what ``tifffile.memmap`` maps), a box is read as row bands straight from the
    file; otherwise the pages of the box are decoded.

    Voxel size: OME-XML ``PhysicalSize*`` or ImageJ ``spacing`` + resolution tags
    + ``unit``, when all three axes and the unit are given (see
    :func:`emqc.sources._tiffmeta.voxel_size_nm`); else None.
    """

    format = "tiff"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        path = Path(spec).expanduser().resolve()
        self._path = str(path)
        try:
            with tm.header_errors(path), tm.open_tiff(path) as tif:
                len(tif.pages)  # index every IFD, so a broken chain shows
                series = tif.series[0]
                page = series.keyframe
                tm.check_greyscale(page, path)
                dims = [(n, a) for n, a in zip(series.shape, series.axes, strict=True) if n > 1]
                if len(dims) == 2:
                    raise UnsupportedSourceError(
                        f"{path} holds one 2D image ({page.shape[0]} × {page.shape[1]}), not a "
                        "volume. Give the folder or a glob of the slices "
                        "(e.g. 'slices/*.tif') instead."
                    )
                if len(dims) != 3 or tuple(series.shape[-2:]) != tuple(page.shape):
                    raise UnsupportedSourceError(
                        f"{path} holds an image series of shape {series.shape} (axes "
                        f"{series.axes}); emqc reads one single-channel 3D volume (Z, Y, X). "
                        "Export one channel and time point as a 3D TIFF and rerun."
                    )
                self.shape = (int(dims[0][0]), int(page.shape[0]), int(page.shape[1]))
                raw = tm.raw_dtype(tif, page)
                self._offset = series.dataoffset if page.is_final else None
                if self._offset is not None:
                    end = (
                        self._offset + self.shape[0] * self.shape[1] * self.shape[2] * raw.itemsize
                    )
                    size = os.path.getsize(path)
                    if end > size:
                        raise CorruptSourceError(
                            f"{path} is truncated: its header declares image data up to byte "
                            f"{end:,} but the file has only {size:,} bytes. Re-export or "
                            "re-copy that file and rerun."
                        )
                else:
                    tm.check_extent(list(series.pages), path)
                    if len(series.pages) != self.shape[0]:
                        raise UnsupportedSourceError(
                            f"{path}: its image series has {len(series.pages)} pages for "
                            f"{self.shape[0]} planes; emqc reads one 2D page per z plane."
                        )
                self.voxel_size_nm = tm.voxel_size_nm(tif)
        except EmqcError:
            raise
        except tm.TIFF_ERRORS as exc:
            raise CorruptSourceError(
                f"{path} is truncated or corrupt (tifffile: {exc}); re-export or re-copy that "
                "file and rerun."
            ) from exc
        self._raw = raw.str
        self.dtype = check_dtype(raw, str(path))
        nz, ny, nx = self.shape
        self.native_chunks = (1, 1, nx) if self._offset is not None else (1, ny, nx)

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        shape = box_shape(z, y, x)
        path = Path(self._path)
        _, ny, nx = self.shape
        if self._offset is not None:
            raw = np.dtype(self._raw)
            plane = ny * nx * raw.itemsize
            out = np.empty(shape, dtype=self.dtype)
            for i, k in enumerate(range(z.start, z.stop)):
                out[i] = tm.read_rows(path, self._offset + k * plane, raw, nx, y, x)
            return out
        try:
            with tifffile.TiffFile(path) as tif:
                planes = tif.asarray(key=range(z.start, z.stop), series=0, maxworkers=1)
            planes = planes.reshape(-1, *planes.shape[-2:])
        except tm.TIFF_ERRORS as exc:
            raise CorruptSourceError(
                f"{path} is truncated or corrupt (tifffile: {exc}); re-export or re-copy that "
                "file and rerun."
            ) from exc
        return planes[:, y, x]

    def files(self) -> list[Path]:
        return [Path(self._path)]
