"""Multiscale pyramids: which levels to build, and the 2× mean downsampling.

Each level halves the finest axes of the level above (axes whose voxels are
within 1.5× of the finest), so isotropic FIB-SEM shrinks in z, y and x alike,
while serial-section data (e.g. 50×4.6×4.6 nm) shrinks in y and x until they
approach z and then in all three, as Neuroglancer and igneous pyramids do. Levels
are added until every axis is at most ``min_size`` voxels.

Downsampling is the block mean (area averaging), the standard for intensity
images because it keeps the mean grey value and suppresses noise [1]_. At an odd
edge the last output voxel averages only the voxels that exist, which equals
averaging after padding by edge replication. Means round half up to ``uint8``.

References
----------
.. [1] scikit-image, ``skimage.transform.downscale_local_mean``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Level", "plan_levels", "downsample_mean", "level_translation"]


@dataclass(frozen=True)
class Level:
    """One pyramid level.

    Attributes
    ----------
    shape : (3,) tuple of int
        Level shape (Z, Y, X).
    voxel_size_nm : (3,) tuple of float
        Voxel size at this level.
    factors : (3,) tuple of int
        Downsampling factors from the previous level (all 1 for level 0).
    """

    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float]
    factors: tuple[int, int, int]


def plan_levels(
    shape: tuple[int, int, int],
    voxel_size_nm: tuple[float, float, float],
    *,
    min_size: int = 64,
    anisotropy_tolerance: float = 1.5,
) -> list[Level]:
    """Levels of the pyramid of a volume.

    Parameters
    ----------
    shape : (3,) tuple of int
        Level-0 shape (Z, Y, X).
    voxel_size_nm : (3,) tuple of float
        Level-0 voxel size (z, y, x) in nanometres.
    min_size : int, optional
        Stop once no axis is longer than this many voxels.
    anisotropy_tolerance : float, optional
        An axis is halved when its voxel size is at most this factor times the
        finest voxel size of the level.

    Returns
    -------
    list of Level
        Level 0 first.

    Examples
    --------
    >>> [lv.shape for lv in plan_levels((250, 250, 250), (10.0, 10.0, 10.0))]
    [(250, 250, 250), (125, 125, 125), (63, 63, 63)]
    >>> [lv.factors for lv in plan_levels((20, 1024, 1024), (50.0, 4.6, 4.6))][:2]
    [(1, 1, 1), (1, 2, 2)]
    """
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    levels = [Level(tuple(shape), tuple(float(v) for v in voxel_size_nm), (1, 1, 1))]  # type: ignore[arg-type]
    while max(levels[-1].shape) > min_size:
        prev = levels[-1]
        finest = min(v for v, n in zip(prev.voxel_size_nm, prev.shape, strict=True) if n > 1)
        factors = tuple(
            2 if (n > 1 and v <= anisotropy_tolerance * finest) else 1
            for v, n in zip(prev.voxel_size_nm, prev.shape, strict=True)
        )
        new_shape = tuple(math.ceil(n / f) for n, f in zip(prev.shape, factors, strict=True))
        new_voxel = tuple(v * f for v, f in zip(prev.voxel_size_nm, factors, strict=True))
        levels.append(Level(new_shape, new_voxel, factors))  # type: ignore[arg-type]
    return levels


def downsample_mean(block: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Block-mean downsampling of a uint8 volume by integer factors.

    Parameters
    ----------
    block : (Z, Y, X) ndarray of uint8
    factors : (3,) tuple of int

    Returns
    -------
    (ceil(Z/fz), ceil(Y/fy), ceil(X/fx)) ndarray of uint8
        Mean of each factor-sized box over the voxels that exist, rounded half up.
    """
    if block.ndim != 3:
        raise ValueError(f"block must be 3D (Z, Y, X), got shape {block.shape}")
    out_shape = tuple(math.ceil(n / f) for n, f in zip(block.shape, factors, strict=True))
    # Pad by edge replication to whole boxes: the mean of a partial box then equals the
    # mean over the voxels that exist only for factor 2, which is all this pyramid uses.
    pad = [(0, o * f - n) for o, f, n in zip(out_shape, factors, block.shape, strict=True)]
    padded = np.pad(block, pad, mode="edge") if any(p[1] for p in pad) else block
    fz, fy, fx = factors
    boxes = padded.reshape(out_shape[0], fz, out_shape[1], fy, out_shape[2], fx)
    total = boxes.sum(axis=(1, 3, 5), dtype=np.uint32)
    n = fz * fy * fx
    # Round half up in integers: floor((2*sum + n) / (2n)).
    return ((2 * total + n) // (2 * n)).astype(np.uint8)


def level_translation(
    voxel_size_nm: tuple[float, ...], base_voxel_nm: tuple[float, ...]
) -> list[float]:
    """Physical offset of a level's first voxel centre relative to level 0's (nm).

    Block means put the centre of a coarse voxel at the centre of the box it
    averages, half a coarse voxel minus half a fine voxel from the origin.
    """
    return [(v - b) / 2.0 for v, b in zip(voxel_size_nm, base_voxel_nm, strict=True)]
