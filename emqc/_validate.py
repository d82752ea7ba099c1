"""Input checks shared by the numerical cores (segmentation, evaluation, baseline).

Each check names the parameter and repeats the value in its message: ``TypeError``
for a wrong type, ``ValueError`` for a wrong value (scikit-image's convention).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["PLANAR_RATIO", "check_voxel_size", "check_number", "check_probability", "is_planar"]

#: Voxels at least this many times longer in z than in y and x are treated as
#: serial sections: seeds, distances and flooding stay within each section.
PLANAR_RATIO = 2.0


def check_voxel_size(voxel_size_nm: Any) -> tuple[float, float, float]:
    """``voxel_size_nm`` as 3 positive floats (z, y, x); TypeError or ValueError naming it."""
    if isinstance(voxel_size_nm, str | bytes) or np.ndim(voxel_size_nm) != 1:
        raise TypeError(
            f"voxel_size_nm must be a sequence of 3 numbers (z, y, x), got {voxel_size_nm!r}"
        )
    if len(voxel_size_nm) != 3:
        raise ValueError(f"voxel_size_nm must have 3 values (z, y, x), got {voxel_size_nm!r}")
    out = []
    for v in voxel_size_nm:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"voxel_size_nm must hold numbers, got {voxel_size_nm!r}")
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"voxel_size_nm must be finite and > 0, got {voxel_size_nm!r}")
        out.append(float(v))
    return tuple(out)  # type: ignore[return-value]


def check_number(name: str, value: Any, *, lo: float | None = None, hi: float | None = None):
    """``value`` as a float within ``[lo, hi]``; TypeError or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if (
        not math.isfinite(value)
        or (lo is not None and value < lo)
        or (hi is not None and value > hi)
    ):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name} must be finite and in {bounds}, got {value!r}")
    return float(value)


def check_probability(name: str, array: Any) -> np.ndarray:
    """A (Z, Y, X) float map with values in [0, 1], as float32."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 3:
        raise ValueError(f"{name} must be a (Z, Y, X) array, got shape {array.shape}")
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array of probabilities, got dtype {array.dtype}")
    if array.size and (not np.isfinite(array).all() or array.min() < 0 or array.max() > 1):
        raise ValueError(f"{name} must hold finite values in [0, 1]")
    return array.astype(np.float32, copy=False)


def is_planar(voxel_size_nm: tuple[float, float, float], planar: bool | str = "auto") -> bool:
    """Whether to work section by section: ``planar``, or for "auto" z ≥ 2 × the in-plane size."""
    if planar == "auto":
        return voxel_size_nm[0] >= PLANAR_RATIO * max(voxel_size_nm[1:])
    if not isinstance(planar, bool):
        raise ValueError(f"planar must be True, False or 'auto', got {planar!r}")
    return planar
