"""Small helpers shared by the readers: natural order, units, read boxes, file lists."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emqc import intensity
from emqc.errors import CorruptSourceError

#: Nanometres per unit, for the unit names the supported formats write (OME-NGFF
#: names, ImageJ's ``micron`` and its escaped ``\\u00B5m``, the micro sign and the
#: Greek mu, both Ångström signs). Lower-case keys.
NM_PER_UNIT: dict[str, float] = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "\u00b5m": 1e3,
    "\u03bcm": 1e3,
    "\\u00b5m": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "angstrom": 0.1,
    "\u00e5": 0.1,
    "\u212b": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometre": 1e-3,
}


def natural_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sort key that orders embedded numbers by value (``slice_2`` before ``slice_10``)."""
    parts = tuple(
        (0, int(tok)) if tok.isdigit() else (1, tok.lower())
        for tok in re.split(r"(\d+)", text)
        if tok
    )
    return parts, text


def to_nm(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as nanometres, or None when the unit is unknown or missing."""
    if unit is None:
        return None
    factor = NM_PER_UNIT.get(str(unit).strip().lower())
    return None if factor is None else float(value) * factor


def voxel_size(values: Iterable[float | None]) -> tuple[float, float, float] | None:
    """Three positive finite sizes in nm as a (z, y, x) tuple, else None.

    Values are rounded to 10 significant digits, so that ``1 / 100`` µm reads as
    10 nm rather than 10.000000000000002 nm.
    """
    vals = list(values)
    if len(vals) != 3 or any(v is None for v in vals):
        return None
    out = [float(f"{float(v):.10g}") for v in vals]  # type: ignore[arg-type]
    if not all(math.isfinite(v) and v > 0 for v in out):
        return None
    return (out[0], out[1], out[2])


def box_shape(z: slice, y: slice, x: slice) -> tuple[int, int, int]:
    """Shape of the box a ``read(z, y, x)`` call asks for."""
    return (
        max(0, z.stop - z.start),
        max(0, y.stop - y.start),
        max(0, x.stop - x.start),
    )


def checked(
    out: np.ndarray, z: slice, y: slice, x: slice, dtype: np.dtype, where: str
) -> np.ndarray:
    """Return ``out`` as a C-contiguous array of ``dtype``; fail if its shape is not the box's."""
    want = box_shape(z, y, x)
    if out.shape != want:
        raise CorruptSourceError(
            f"{where} returned a block of shape {out.shape} where {want} was asked for "
            f"(box z={z.start}:{z.stop}, y={y.start}:{y.stop}, x={x.start}:{x.stop}); the "
            "source may have changed since it was opened. Reopen it and rerun."
        )
    return np.ascontiguousarray(out, dtype=dtype)


def check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    """Return ``dtype`` in native byte order, after :func:`emqc.intensity.check_dtype` accepts it."""
    dtype = np.dtype(dtype)
    intensity.check_dtype(dtype, where=where)
    return dtype.newbyteorder("=")


def files_under(folder: Path) -> list[Path]:
    """Every regular file below ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def short_list(items: list[str], limit: int = 12) -> str:
    """``a, b, c`` (with ``… and N more`` past ``limit``) for error messages."""
    if not items:
        return "(none)"
    head = ", ".join(items[:limit])
    return head if len(items) <= limit else f"{head}, … and {len(items) - limit} more"
