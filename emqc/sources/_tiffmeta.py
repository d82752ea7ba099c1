"""TIFF header helpers shared by the slice-stack and multipage-TIFF readers.

Only the header (IFDs, tags, ImageJ/OME description) is parsed here; no pixel data
is decoded.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from emqc.errors import CorruptSourceError, UnsupportedDtypeError

from ._util import to_nm, voxel_size

#: Exceptions tifffile and the imagecodecs decoders raise on bad bytes
#: (``TiffFileError`` is a ``ValueError``; imagecodecs errors are ``RuntimeError``).
TIFF_ERRORS = (ValueError, RuntimeError, OSError, EOFError, IndexError, KeyError)

#: TIFF ``ResolutionUnit`` values: nanometres per unit.
_NM_PER_RESUNIT = {2: 2.54e7, 3: 1e7}  # inch, centimetre


def open_tiff(path: Path) -> tifffile.TiffFile:
    """Open a TIFF header; a file tifffile cannot parse raises :class:`CorruptSourceError`."""
    try:
        return tifffile.TiffFile(path)
    except TIFF_ERRORS as exc:
        raise CorruptSourceError(
            f"{path} is not a readable TIFF: it is truncated or corrupt (tifffile: {exc}). "
            "Re-export or re-copy that file and rerun."
        ) from exc


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def header_errors(path: Path) -> Iterator[None]:
    """Turn errors tifffile only logs while indexing pages into :class:`CorruptSourceError`.

    tifffile logs (and then ignores) a broken IFD chain, e.g. a file cut inside its
    last IFDs, and reads on with fewer pages; the volume would then look complete.
    """
    handler = _Collect()
    log = logging.getLogger("tifffile")
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.messages:
        raise CorruptSourceError(
            f"{path} is truncated or corrupt (tifffile: {handler.messages[0]}); re-export or "
            "re-copy that file and rerun."
        )


def check_greyscale(page: tifffile.TiffPage, path: Path) -> None:
    """Refuse RGB, multi-sample and palette-colour pages."""
    if page.samplesperpixel > 1 or len(page.shape) != 2 or page.photometric == 3:
        raise UnsupportedDtypeError(
            f"{path} holds a colour or multi-channel image (shape {page.shape}, "
            f"{page.samplesperpixel} samples per pixel, photometric "
            f"{tifffile.PHOTOMETRIC(page.photometric).name}); emqc needs single-channel "
            "greyscale EM. Convert the images to greyscale first."
        )


def check_extent(pages: list, path: Path) -> None:
    """Fail if any page's data lies (partly) past the end of the file.

    Cheap truncation check from the header: the strip/tile offsets and byte counts
    must fit in the file.
    """
    size = os.path.getsize(path)
    end = 0
    for page in pages:
        if page is None:
            raise CorruptSourceError(
                f"{path} is truncated or corrupt: a page of the image series cannot be "
                "read. Re-export or re-copy that file and rerun."
            )
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
        end = max([end, *ends])
    if end > size:
        raise CorruptSourceError(
            f"{path} is truncated: its header declares image data up to byte {end:,} but "
            f"the file has only {size:,} bytes. Re-export or re-copy that file and rerun."
        )


def raw_dtype(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> np.dtype:
    """The page's voxel type with the file's byte order (as the bytes lie on disk)."""
    return np.dtype(page.dtype).newbyteorder(tif.byteorder)


def final_offset(page: tifffile.TiffPage) -> int | None:
    """Offset of the page's pixels if they lie uncompressed, in order, in one run; else None.

    Such pages (what ``tifffile.memmap`` maps) are read as row bands straight from
    the file, without decoding the whole image.
    """
    if page.is_final and page.dtype is not None and len(page.dataoffsets) > 0:
        return int(page.dataoffsets[0])
    return None


def voxel_size_nm(tif: tifffile.TiffFile) -> tuple[float, float, float] | None:
    """(z, y, x) voxel size in nm from OME-XML or ImageJ metadata, else None.

    - OME-TIFF: ``PhysicalSizeX/Y/Z`` of the first ``Pixels`` element with their
      ``PhysicalSize*Unit`` (OME's default unit is µm). All three are needed.
    - ImageJ: x and y from the first page's ``XResolution``/``YResolution`` tags
      (pixels per unit), z from the ``spacing`` entry, the unit from the ``unit``
      entry (``micron``, ``nm``, ...). All are needed.

    Plain TIFF resolution tags alone are not used: they give no z spacing, and many
    writers fill them with placeholders (72 dpi, 1 pixel per unit).
    """
    if tif.is_ome and tif.ome_metadata:
        return _ome_voxel_size(tif.ome_metadata)
    meta = tif.imagej_metadata
    if meta and "spacing" in meta and "unit" in meta:
        page = tif.pages.first
        ppu = []
        for tag in ("YResolution", "XResolution"):
            item = page.tags.get(tag)
            if item is None:
                return None
            num, den = item.value
            ppu.append(num / den if den else 0.0)
        if min(ppu) <= 0:
            return None
        unit = meta["unit"]
        return voxel_size(to_nm(v, unit) for v in (meta["spacing"], 1 / ppu[0], 1 / ppu[1]))
    return None


def _ome_voxel_size(xml: str) -> tuple[float, float, float] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next(
        (el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None
    )
    if pixels is None:
        return None
    sizes = []
    for ax in "ZYX":
        value = pixels.get(f"PhysicalSize{ax}")
        if value is None:
            return None
        sizes.append(to_nm(float(value), pixels.get(f"PhysicalSize{ax}Unit", "µm")))
    return voxel_size(sizes)


def read_rows(
    path: Path, offset: int, dtype: np.dtype, width: int, y: slice, x: slice
) -> np.ndarray:
    """Rows ``y`` (columns ``x``) of an uncompressed image stored row by row at ``offset``.

    Reads only the bytes of those rows with a plain file read (no memory map, so a
    file truncated while mapped cannot crash the process with SIGBUS).
    """
    row = width * dtype.itemsize
    nbytes = (y.stop - y.start) * row
    try:
        with open(path, "rb") as fh:
            fh.seek(offset + y.start * row)
            buf = fh.read(nbytes)
    except OSError as exc:
        raise CorruptSourceError(
            f"{path} could not be read ({exc}); check that the file is still there and "
            "readable, then rerun."
        ) from exc
    if len(buf) != nbytes:
        raise CorruptSourceError(
            f"{path} is truncated: rows {y.start}–{y.stop - 1} need {nbytes:,} bytes from "
            f"byte {offset + y.start * row:,} but only {len(buf):,} are there. Re-export or "
            "re-copy that file and rerun."
        )
    rows = np.frombuffer(buf, dtype=dtype).reshape(y.stop - y.start, width)
    return rows[:, x]
