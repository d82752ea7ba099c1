"""Coarser voxels: the same tissue imaged at, for instance, 16 nm instead of 8-10 nm."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._common import Damaged, artifact_result, prepare_artifact, unchanged

#: Voxel size factor at severity 1 (8 nm becomes 16 nm, 10 nm becomes 20 nm).
COARSEN_MAX = 2.0


def resolution(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Image at coarser voxels, shown on the original grid.

    A microscope set to coarser voxels integrates the signal over each larger voxel
    (a larger scan pixel, a thicker milled slice). The model does exactly that: every
    axis is re-binned to voxels ``1 + severity * (COARSEN_MAX - 1)`` times larger by an
    exact box (area-weighted) mean, fractional factors included, then interpolated
    linearly back to the original grid, so the output aligns voxel for voxel with the
    input and its labels. The effective voxel size is in ``params``. ``seed`` is
    checked but not used.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
        The input voxel size; every axis is coarsened by the same factor.
    severity : float
        In [0, 1]: 0 unchanged, 0.5 voxels 1.5x larger (10 nm -> 15 nm), 1 twice as
        large (8 nm -> 16 nm, the coarser of the two standard FIB-SEM settings).
    seed : int

    Returns
    -------
    Damaged
        ``params`` holds ``factor`` and ``effective_voxel_size_nm``.

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.

    References
    ----------
    .. [1] Brain Preservation Foundation prize evaluations: FIB-SEM stacks at 8 nm and
       16 nm isotropic voxels (see DOMAIN.md).
    """
    inp, params = prepare_artifact("resolution", image, labels, voxel_size_nm, severity, seed)
    if inp.severity == 0:
        return unchanged(inp, params)
    factor = 1.0 + inp.severity * (COARSEN_MAX - 1.0)
    out = inp.image.astype(np.float64)
    for axis, n in enumerate(out.shape):
        resample = _upsample(n, factor) @ _bin(n, factor)  # (n, n): bin, then interpolate
        out = np.moveaxis(np.tensordot(resample, out, axes=([1], [axis])), 0, axis)
    params |= {
        "factor": factor,
        "effective_voxel_size_nm": [v * factor for v in inp.voxel_size_nm],
    }
    return artifact_result(inp, out, params)


def _bin(n: int, factor: float) -> np.ndarray:
    """(m, n) matrix: mean of the fine voxels (in fine-voxel units) each coarse voxel covers."""
    m = max(1, math.ceil(n / factor - 1e-9))
    lo = np.arange(m)[:, None] * factor
    hi = np.minimum(lo + factor, n)
    edges = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, edges + 1) - np.maximum(lo, edges), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _upsample(n: int, factor: float) -> np.ndarray:
    """(n, m) matrix: linear interpolation from coarse voxel centres to fine voxel centres."""
    m = max(1, math.ceil(n / factor - 1e-9))
    centres = (np.arange(m) + 0.5) * factor
    centres[-1] = (centres[-1] - 0.5 * factor + n) / 2  # the last voxel may be partial
    x = np.arange(n) + 0.5
    out = np.zeros((n, m))
    if m == 1:
        out[:, 0] = 1.0
        return out
    j = np.clip(np.searchsorted(centres, x) - 1, 0, m - 2)
    t = np.clip((x - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0)
    out[np.arange(n), j] = 1.0 - t
    out[np.arange(n), j + 1] = t
    return out
