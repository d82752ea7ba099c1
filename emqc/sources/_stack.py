"""A folder (or glob) of 2D TIFF or PNG slices read as one (Z, Y, X) volume."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import zarr

from emqc.errors import (
    CorruptSourceError,
    EmqcError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedDtypeError,
    UnsupportedSourceError,
)

from . import _tiffmeta as tm
from ._base import VolumeSource
from ._util import box_shape, check_dtype, natural_key

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Compressed TIFF slices up to this size are decoded whole (cheaper than opening
#: tifffile's Zarr store to decode a few strips); larger ones strip by strip.
WHOLE_SLICE_BYTES = 16 * 1024**2


def is_glob(spec: str) -> bool:
    """True when ``spec`` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
    return any(c in spec for c in "*?[")


def find_slices(spec: str) -> list[Path]:
    """The slice files a folder or glob names, in natural order (``2`` before ``10``).

    A folder contributes its ``.tif``/``.tiff``/``.png`` files (any case; hidden
    files such as macOS ``._name.tif`` are skipped); a glob contributes every file
    it matches, which must all be slices.
    """
    if is_glob(spec):
        pattern = os.path.expanduser(spec)
        paths = [Path(p).resolve() for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        if not paths:
            raise SourceNotFoundError(
                f"No file matches the pattern {spec!r} (looked in "
                f"{Path(os.path.dirname(pattern) or '.').resolve()}). Check the folder and "
                "the pattern, e.g. 'slices/*.tif'."
            )
        odd = [p for p in paths if p.suffix.lower() not in TIFF_SUFFIXES + PNG_SUFFIXES]
        if odd:
            raise UnsupportedSourceError(
                f"The pattern {spec!r} matches {odd[0]}, which is not a .tif, .tiff or .png "
                "slice. Narrow the pattern to the slices, e.g. 'slices/*.tif'."
            )
    else:
        folder = Path(spec).expanduser().resolve()
        paths = [
            p
            for p in folder.iterdir()
            if p.suffix.lower() in TIFF_SUFFIXES + PNG_SUFFIXES
            and not p.name.startswith(".")
            and p.is_file()
        ]
        if not paths:
            raise SourceNotFoundError(
                f"{folder} holds no .tif, .tiff or .png slices (and is not a Zarr or N5 "
                "folder). Give a folder of 2D slices, a glob such as 'slices/*.tif', or a "
                "volume file (.tif, .mrc, .h5, .zarr, .n5)."
            )
    kinds = {p.suffix.lower() in TIFF_SUFFIXES for p in paths}
    if len(kinds) > 1:
        raise UnsupportedSourceError(
            f"{spec} mixes TIFF and PNG slices; give a glob that picks one kind, e.g. "
            f"'{os.path.join(spec, '*.tif') if not is_glob(spec) else spec}'."
        )
    return sorted(paths, key=lambda p: natural_key(str(p)))


class SliceStackSource(VolumeSource):
    """Slices ``z = 0, 1, ...`` are the files in natural order; each is one 2D image.

    Opening reads every slice's header only: TIFF IFDs (the first page of each
    file) or the PNG ``IHDR`` chunk, and checks that all slices share the first
    slice's shape and type, are greyscale, and are not visibly truncated (TIFF
    data past the end of the file, a PNG without its closing ``IEND`` chunk).

    Reading: uncompressed TIFF slices are read as row bands straight from the
    file; compressed TIFF slices decode only the strips or tiles a box touches
    (tifffile's Zarr store), or the whole page when the box covers it;
    :attr:`native_chunks` says which (whole slices up to
    :data:`WHOLE_SLICE_BYTES`, else the strip or tile). PNG slices are decoded
    whole (PNG cannot be decoded in parts).

    Voxel size: from the first slice's OME-XML or ImageJ metadata when it gives
    all of x, y and z with a unit (see :func:`emqc.sources._tiffmeta.voxel_size_nm`);
    PNG slices and plain TIFF slices give None.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        paths = find_slices(spec)
        self._paths = [str(p) for p in paths]
        self._tiff = paths[0].suffix.lower() in TIFF_SUFFIXES
        self.format = "tiff-stack" if self._tiff else "png-stack"
        # Per slice: offset of uncompressed row-ordered pixels (None: decode) and the
        # on-disk type (byte order may differ between slices written by different tools).
        self._offsets: list[int | None] = []
        self._raw: list[str] = []
        first: tuple[tuple[int, ...], np.dtype] | None = None
        unit: tuple[int, int] | None = None  # rows, columns decoded at once
        self.voxel_size_nm = None
        for i, path in enumerate(paths):
            if self._tiff:
                shape, raw, offset, unit_i, vox = _tiff_header(path, first_slice=i == 0)
            else:
                (shape, raw), offset, vox = _png_header(path), None, None
                unit_i = shape
            if first is None:
                first = (shape, raw.newbyteorder("="))
                unit, self.voxel_size_nm = unit_i, vox
            elif (shape, raw.newbyteorder("=")) != first:
                raise ShapeMismatchError(
                    f"Slice {path} is {_desc(shape, raw)} but the first slice {paths[0]} is "
                    f"{_desc(*first)}; every slice of a stack must have the same shape and "
                    "type. Remove or re-export the odd slice and rerun."
                )
            self._offsets.append(offset)
            self._raw.append(raw.str)
        assert first is not None and unit is not None
        self.dtype = check_dtype(first[1], str(paths[0]))
        ny, nx = first[0]
        self.shape = (len(paths), ny, nx)
        if all(o is not None for o in self._offsets):
            self.native_chunks = (1, 1, nx)  # any band of rows is a cheap read
        elif ny * nx * self.dtype.itemsize <= WHOLE_SLICE_BYTES:
            self.native_chunks = (1, ny, nx)
        else:
            self.native_chunks = (1, min(unit[0], ny), min(unit[1], nx))

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        out = np.empty(box_shape(z, y, x), dtype=self.dtype)
        for i, k in enumerate(range(z.start, z.stop)):
            out[i] = self._read_slice(k, y, x)
        return out

    def _read_slice(self, k: int, y: slice, x: slice) -> np.ndarray:
        path, offset = Path(self._paths[k]), self._offsets[k]
        _, ny, nx = self.shape
        if offset is not None:
            return tm.read_rows(path, offset, np.dtype(self._raw[k]), nx, y, x)
        try:
            if not self._tiff:
                with open(path, "rb") as fh:
                    img = imagecodecs.png_decode(fh.read())
            elif (y.start, y.stop, x.start, x.stop) == (0, ny, 0, nx):
                with tifffile.TiffFile(path) as tif:
                    img = tif.pages.first.asarray(maxworkers=1)
            else:
                # Decode only the strips/tiles the box touches.
                with tifffile.imread(path, aszarr=True, series=0, level=0, maxworkers=1) as store:
                    band = zarr.open_array(store, mode="r")
                    if band.shape != (ny, nx):
                        img = band  # reported below
                    else:
                        return band[y, x]
        except (*tm.TIFF_ERRORS, imagecodecs.PngError) as exc:
            lib = "tifffile" if self._tiff else "imagecodecs"
            raise CorruptSourceError(
                f"{path} is truncated or corrupt ({lib}: {exc}); re-export or re-copy that "
                "slice and rerun."
            ) from exc
        if img.shape != (ny, nx):
            raise CorruptSourceError(
                f"{path} decodes to shape {img.shape}, not the {(ny, nx)} its header gave when "
                "the stack was opened: the file changed since. Reopen the source and rerun."
            )
        return img[y, x]

    def files(self) -> list[Path]:
        return [Path(p) for p in self._paths]


def _tiff_header(path: Path, *, first_slice: bool) -> tuple:
    """Shape, on-disk type, raw offset (or None), decode unit and voxel size of a TIFF slice."""
    try:
        with tm.header_errors(path), tm.open_tiff(path) as tif:
            len(tif.pages)  # index every IFD, so a broken chain shows
            page = tif.pages.first
            tm.check_greyscale(page, path)
            tm.check_extent([page], path)
            if page.is_tiled:
                unit = (page.tilelength, page.tilewidth)
            else:
                unit = (page.rowsperstrip or page.imagelength, page.imagewidth)
            vox = tm.voxel_size_nm(tif) if first_slice else None
            return page.shape, tm.raw_dtype(tif, page), tm.final_offset(page), unit, vox
    except EmqcError:
        raise
    except tm.TIFF_ERRORS as exc:
        raise CorruptSourceError(
            f"{path} is truncated or corrupt (tifffile: {exc}); re-export or re-copy "
            "that slice and rerun."
        ) from exc


def _desc(shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"{' × '.join(map(str, shape))} {np.dtype(dtype).newbyteorder('=')}"


def _png_header(path: Path) -> tuple[tuple[int, int], np.dtype]:
    """Shape and type from a PNG's ``IHDR`` chunk, checking the file ends with ``IEND``."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(33)
            fh.seek(max(0, size - 12))
            tail = fh.read(12)
    except OSError as exc:
        raise CorruptSourceError(f"{path} could not be read ({exc}); check it and rerun.") from exc
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise CorruptSourceError(
            f"{path} is not a readable PNG (bad signature or header); re-export or re-copy "
            "that slice and rerun."
        )
    if tail[4:8] != b"IEND":
        raise CorruptSourceError(
            f"{path} is truncated: the PNG does not end with its IEND chunk; re-export or "
            "re-copy that slice and rerun."
        )
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    depth, colour = head[24], head[25]
    if colour != 0:
        kind = {2: "RGB", 3: "palette-colour", 4: "grey + alpha", 6: "RGBA"}.get(colour, "colour")
        raise UnsupportedDtypeError(
            f"{path} is a {kind} PNG; emqc needs single-channel greyscale EM. Convert the "
            "slices to greyscale first."
        )
    if depth not in (8, 16):
        raise UnsupportedDtypeError(
            f"{path} is a {depth}-bit greyscale PNG; emqc reads 8- and 16-bit greyscale. "
            "Convert the slices to 8 or 16 bits first."
        )
    return (height, width), np.dtype(">u2" if depth == 16 else "u1")
