"""Euclidean distance transforms in nanometres, shared by the numerical cores.

A thin layer over the ``edt`` package (Silversmith et al., seung-lab: the distance
transform of Igneous and Kimimaro), which gives the same distances as
:func:`scipy.ndimage.distance_transform_edt` (to float32 rounding) 5-7 times
faster on the blocks emqc scores. One thread: blocks, not voxels, are the unit of
parallelism.
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np

__all__ = ["distance_nm"]


def distance_nm(inside: np.ndarray, voxel_size_nm: Sequence[float]) -> np.ndarray:
    """Distance (nm) from each ``True`` voxel to the nearest ``False`` voxel; 0 on ``False``.

    Voxels outside the array are not ``False`` (the border is open, as in
    :func:`scipy.ndimage.distance_transform_edt`); where the array holds no ``False``
    voxel at all the distance is ``inf``.

    Parameters
    ----------
    inside : ndarray of bool, 1-3 dimensions
    voxel_size_nm : sequence of float
        One voxel size per axis of ``inside``.

    Returns
    -------
    ndarray of float32, the shape of ``inside``

    References
    ----------
    .. [1] P. F. Felzenszwalb and D. P. Huttenlocher (2012), Distance transforms of
       sampled functions, Theory of Computing 8:415-428.

    Examples
    --------
    >>> import numpy as np
    >>> row = np.array([[[0, 1, 1, 1, 0]]], bool)
    >>> distance_nm(row, (10.0, 10.0, 5.0))[0, 0].tolist()
    [0.0, 5.0, 10.0, 5.0, 0.0]
    """
    inside = np.asarray(inside, dtype=bool)
    if inside.size == 0:
        return np.zeros(inside.shape, np.float32)
    if inside.ndim != len(voxel_size_nm):
        raise ValueError(
            f"voxel_size_nm has {len(voxel_size_nm)} values for a {inside.ndim}-D array"
        )
    if inside.all():
        return np.full(inside.shape, np.inf, np.float32)
    out = edt.edt(
        np.ascontiguousarray(inside),
        anisotropy=tuple(float(v) for v in voxel_size_nm),
        black_border=False,
        parallel=1,
    )
    return out.astype(np.float32, copy=False)
