"""Classical membrane detector: a multi-scale Hessian ridge (sheet) filter for dark membranes.

A membrane is a thin dark sheet in 3D (a dark line in a section). Across it the
image has a minimum, so the largest eigenvalue of the Hessian is large and
positive, whatever the membrane's orientation. The filter response is that
eigenvalue, scale-normalised by σ² (Lindeberg 1998) and maximised over scales:
Sato et al.'s line filter (1998) in 2D (the same as :func:`skimage.filters.sato`
there) and its sheet form in 3D (Descoteaux et al. 2005 use the same eigenvalue
for sheetness). Note that :func:`skimage.filters.sato` in 3D measures *tubeness*
(two large eigenvalues), which misses sheets: on the medulla cube's training part
its average precision was 0.52 against 0.88 for this sheet filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from .._validate import check_number, check_voxel_size, is_planar

__all__ = ["normalize_intensity", "ridge_boundary"]

#: Percentiles of the robust intensity range mapped to 0 and 1.
INTENSITY_PERCENTILES = (0.5, 99.5)
#: Response mapped to boundary probability 1: a dark line of full contrast at its own
#: scale gives about 0.5; this gain puts typical membranes near 0.5-1.
RESPONSE_AT_ONE = 0.25
#: Voxels per slab when the 3D eigenvalues are computed (bounds the memory used).
_SLAB_VOXELS = 2_000_000


def normalize_intensity(raw: np.ndarray) -> np.ndarray:
    """``raw`` as float32 with its 0.5th and 99.5th percentiles mapped to 0 and 1 (clipped)."""
    raw = np.asarray(raw)
    if raw.dtype.kind not in "uif":
        raise TypeError(f"raw must be a numeric image, got dtype {raw.dtype}")
    sample = raw.ravel()[:: max(1, raw.size // 4_000_000)]
    lo, hi = np.percentile(sample, INTENSITY_PERCENTILES)
    if hi <= lo:
        return np.zeros(raw.shape, np.float32)
    return np.clip((raw.astype(np.float32) - lo) / (hi - lo), 0, 1)


def _largest_eigenvalue(h: dict[tuple[int, int], np.ndarray], axes: tuple[int, ...]) -> np.ndarray:
    """Largest eigenvalue of the symmetric Hessian given by its upper-triangle components."""
    if len(axes) == 2:
        a, b, c = h[axes[0], axes[0]], h[axes[0], axes[1]], h[axes[1], axes[1]]
        return (a + c) / 2 + np.sqrt(((a - c) / 2) ** 2 + b**2)
    shape = h[0, 0].shape
    out = np.empty(shape, np.float32)
    step = max(1, _SLAB_VOXELS // max(1, shape[1] * shape[2]))
    for z0 in range(0, shape[0], step):
        sl = slice(z0, z0 + step)
        m = np.empty((*h[0, 0][sl].shape, 3, 3), np.float32)
        for i in range(3):
            for j in range(i, 3):
                m[..., i, j] = m[..., j, i] = h[i, j][sl]
        out[sl] = np.linalg.eigvalsh(m)[..., -1]
    return out


def ridge_boundary(
    raw: np.ndarray,
    *,
    voxel_size_nm: Any,
    scales_nm: Sequence[float] = (15.0,),
    black_ridges: bool = True,
    planar: bool | Literal["auto"] = "auto",
) -> np.ndarray:
    """Boundary probability of an EM block from a Hessian ridge filter.

    1. The intensity is normalised to [0, 1] by its 0.5th-99.5th percentiles (and
       inverted when ``black_ridges`` is False, for bright-membrane data).
    2. For each scale σ (nm), Gaussian second derivatives give the Hessian in
       physical units (anisotropy-aware); with ``planar`` only the in-plane ones,
       section by section.
    3. The response is ``σ² · max(λ_max, 0)``, maximised over the scales.
    4. It is divided by :data:`RESPONSE_AT_ONE` and clipped to [0, 1].

    The result is a monotone score, not a calibrated probability; thresholds for it
    must be chosen on training data.

    Parameters
    ----------
    raw : (Z, Y, X) ndarray
        EM intensities (any numeric type).
    voxel_size_nm : (float, float, float)
    scales_nm : sequence of float
        Gaussian scales (nm); about half the width of a membrane's dark line.
    black_ridges : bool
        Membranes are dark (True, the usual EM contrast) or bright.
    planar : {"auto", True, False}
        Section by section (by default when the z voxel is at least twice the
        in-plane size), or in 3D.

    Returns
    -------
    (Z, Y, X) ndarray of float32
        In [0, 1].

    References
    ----------
    .. [1] Y. Sato et al. (1998), Three-dimensional multi-scale line filter for
       segmentation and visualization of curvilinear structures in medical images,
       Medical Image Analysis 2(2):143-168.
    .. [2] T. Lindeberg (1998), Edge detection and ridge detection with automatic
       scale selection, Int. J. Computer Vision 30(2):117-156.
    .. [3] M. Descoteaux, M. Audette, K. Chinzei and K. Siddiqi (2005), Bone
       enhancement filtering: application to sinus bone segmentation and simulation
       of pituitary surgery, MICCAI, LNCS 3749:9-16 (sheetness).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((1, 32, 32), 200, np.uint8); img[:, :, 15:17] = 40
    >>> b = ridge_boundary(img, voxel_size_nm=(50, 5, 5), scales_nm=(8,))
    >>> bool(b[0, 10, 16] > 0.5 > b[0, 10, 5])
    True
    """
    if not isinstance(raw, np.ndarray) or raw.ndim != 3:
        raise ValueError(
            f"raw must be a (Z, Y, X) numpy array, got {getattr(raw, 'shape', type(raw))}"
        )
    vox = check_voxel_size(voxel_size_nm)
    if isinstance(scales_nm, str | bytes) or not isinstance(scales_nm, Sequence) or not scales_nm:
        raise TypeError(f"scales_nm must be a non-empty sequence of numbers, got {scales_nm!r}")
    scales = [check_number("scales_nm", s, lo=1e-6) for s in scales_nm]
    if not isinstance(black_ridges, bool):
        raise TypeError(f"black_ridges must be True or False, got {black_ridges!r}")
    flat = is_planar(vox, planar)
    axes = (1, 2) if flat else (0, 1, 2)

    # 1. Normalised intensity, membranes bright after this so that they are maxima of -image.
    image = normalize_intensity(raw)
    if not black_ridges:
        image = 1 - image
    response = np.zeros(raw.shape, np.float32)
    for sigma_nm in scales:
        # 2. Hessian in nm⁻²: voxel-unit Gaussian derivatives divided by the voxel sizes.
        sigma = [sigma_nm / v if a in axes else 0.0 for a, v in enumerate(vox)]
        h = {}
        for i in axes:
            for j in axes:
                if j < i:
                    continue
                order = [0, 0, 0]
                order[i] += 1
                order[j] += 1
                d = ndi.gaussian_filter(image, sigma=sigma, order=order, mode="reflect")
                h[i, j] = (d / (vox[i] * vox[j])).astype(np.float32)
        # 3. Scale-normalised largest eigenvalue, kept where positive.
        lam = _largest_eigenvalue(h, axes)
        np.maximum(response, sigma_nm**2 * np.maximum(lam, 0), out=response)
    # 4. Fixed gain, so that the map does not depend on what else is in the block.
    return np.clip(response / RESPONSE_AT_ONE, 0, 1).astype(np.float32)
