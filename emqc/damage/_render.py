"""Drawing helpers: boundaries, smooth random fields, image levels and soft pasting.

The simulators edit real EM images, so what they paste must look like the image
around it: the grey levels of membranes, cytoplasm and pale space are measured on
the image itself (:func:`measure_levels`), pasted regions get the image's noise back
(:func:`texture`), and every paste is blurred by a point-spread function of a few nm
(:func:`composite`) so that no edit has a sharper edge than the microscope gives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Half-thickness of the dark band a stained membrane pair makes in FIB-SEM at 8-10 nm
#: (the medulla cube is dark within about 20 nm of a label boundary).
MEMBRANE_HALF_NM = 15.0
#: Sigma of the point-spread function used to soften pasted edits.
PSF_SIGMA_NM = 6.0

Voxel = tuple[float, float, float]


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Voxels whose 6-neighbour has another label (both sides of every interface)."""
    out = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        if labels.shape[axis] < 2:
            continue
        differs = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        out[tuple(lo)] |= differs
        out[tuple(hi)] |= differs
    return out


def distance_nm(mask: np.ndarray, voxel: Voxel, *, indices: bool = False):
    """Distance in nm from every voxel to the nearest True voxel of ``mask`` (inf if none).

    With ``indices=True`` also return the index arrays of that nearest voxel.
    """
    if not mask.any():
        far = np.full(mask.shape, np.inf)
        if indices:
            return far, np.indices(mask.shape)
        return far
    return ndi.distance_transform_edt(~mask, sampling=voxel, return_indices=indices)


def sigma_vox(sigma_nm: float, voxel: Voxel) -> tuple[float, ...]:
    """A physical Gaussian sigma as per-axis sigmas in voxels."""
    return tuple(sigma_nm / v for v in voxel)


def grow(mask: np.ndarray, nm: float, voxel: Voxel) -> np.ndarray:
    """Dilate ``mask`` by ``nm`` along every axis (a box; cheap, separable)."""
    size = tuple(2 * int(nm // v) + 1 for v in voxel)
    if max(size) == 1:
        return mask.copy()
    return ndi.maximum_filter(mask, size=size, mode="nearest")


def smooth_field(
    shape: tuple[int, ...], voxel: Voxel, corr_nm: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random field of unit standard deviation, correlated over ``corr_nm``.

    White noise on a coarse grid (spacing ``corr_nm / 2``), smoothed there and
    interpolated separably (cubic convolution) to the voxel grid: cheap for long
    correlation lengths, and the same physical pattern whatever the voxel size.
    """
    step = corr_nm / 2.0
    positions = [(np.arange(n) + 0.5) * v / step + 2.0 for n, v in zip(shape, voxel, strict=True)]
    coarse_shape = tuple(int(np.ceil(p[-1])) + 3 for p in positions)
    field = ndi.gaussian_filter(rng.standard_normal(coarse_shape), 1.0, mode="wrap")
    for axis, pos in enumerate(positions):
        weights = _cubic_matrix(pos, coarse_shape[axis])
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def _cubic_matrix(pos: np.ndarray, n: int) -> np.ndarray:
    """(len(pos), n) weights of Keys' cubic convolution (a = -0.5) at ``pos``."""
    base = np.floor(pos).astype(int)
    out = np.zeros((pos.size, n))
    for k in range(-1, 3):
        j = np.clip(base + k, 0, n - 1)
        t = np.abs(pos - (base + k))
        w = np.where(
            t <= 1,
            1.5 * t**3 - 2.5 * t**2 + 1,
            np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0),
        )
        np.add.at(out, (np.arange(pos.size), j), w)
    return out


def texture(
    shape: tuple[int, ...],
    voxel: Voxel,
    std: float,
    rng: np.random.Generator,
    corr_nm: float = PSF_SIGMA_NM,
) -> np.ndarray:
    """Fine noise with standard deviation ``std``, correlated over ``corr_nm`` (the PSF)."""
    sigma = tuple(max(0.5, s) for s in sigma_vox(corr_nm, voxel))
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    scale = noise.std()
    return noise * (std / scale) if scale > 0 else noise


@dataclass(frozen=True)
class Levels:
    """Grey levels measured on the input image (floats in 0-255).

    membrane : dark level of membranes (lower quartile within 10 nm of a boundary between
        two cells).
    cytoplasm : median away from boundaries.
    pale : electron-lucent level (99.5th percentile of the image, at least cytoplasm + 25).
    noise : standard deviation of the voxel noise (MAD of second differences along x).
    texture : standard deviation of fine cytoplasm texture (residual of a 30 nm blur).
    """

    membrane: float
    cytoplasm: float
    pale: float
    noise: float
    texture: float


def measure_levels(image: np.ndarray, labels: np.ndarray, voxel: Voxel) -> Levels:
    """Measure :class:`Levels` on ``image`` given its cell ``labels``."""
    img = image.astype(np.float32)
    edge = boundaries(labels)
    far = ~grow(edge, 3 * MEMBRANE_HALF_NM, voxel)
    # Membranes between two cells: pale extracellular space nearby would lighten them.
    near = grow(edge, 10.0, voxel) & ~grow(labels == 0, 3 * MEMBRANE_HALF_NM, voxel)
    cyto = float(np.median(img[far])) if far.any() else float(np.median(img))
    if near.any() and far.any() and float(np.median(img[near])) > cyto + 5:
        warnings.warn(
            f"image looks inverted: its cell boundaries (median {np.median(img[near]):.0f}) are "
            f"brighter than the cytoplasm ({cyto:.0f}); the damage simulators draw dark "
            "membranes and pale extracellular space (TEM-like polarity): invert first",
            stacklevel=3,
        )
    membrane = float(np.percentile(img[near], 25)) if near.any() else cyto - 40.0
    pale = max(float(np.percentile(img, 99.5)), cyto + 25.0)
    if img.shape[-1] >= 3:
        d2 = img[..., 2:] - 2 * img[..., 1:-1] + img[..., :-2]
        noise = float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))
    else:
        noise = 2.0
    residual = img - ndi.gaussian_filter(img, sigma_vox(30.0, voxel))
    fine = float(residual[far].std()) if far.any() else float(residual.std())
    return Levels(
        membrane=min(membrane, cyto - 10.0),
        cytoplasm=cyto,
        pale=min(pale, 250.0),
        noise=max(noise, 1.0),
        texture=max(fine, noise, 1.0),
    )


def local_mean(image: np.ndarray, weights: np.ndarray, voxel: Voxel, sigma_nm: float) -> np.ndarray:
    """Normalized convolution: the Gaussian-weighted mean of ``image`` over ``weights``.

    Estimates, for instance, the cytoplasm intensity under a membrane from the
    cytoplasm around it. Falls back to the plain mean where no weight is near.
    """
    w = weights.astype(np.float32)
    sig = sigma_vox(sigma_nm, voxel)
    num = ndi.gaussian_filter(image.astype(np.float32) * w, sig)
    den = ndi.gaussian_filter(w, sig)
    fallback = float(image[weights].mean()) if weights.any() else float(image.mean())
    out = np.full(image.shape, fallback, np.float32)
    ok = den > 1e-3
    out[ok] = num[ok] / den[ok]
    return out


def _psf(voxel: Voxel) -> tuple[float, ...]:
    return tuple(max(0.5, s) for s in sigma_vox(PSF_SIGMA_NM, voxel))


def composite(
    image: np.ndarray, target: np.ndarray, mask: np.ndarray, voxel: Voxel
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``target`` over ``image`` where ``mask``, with edges blurred by the PSF.

    Returns the float result and the blurred mask (the paste weight per voxel).
    """
    psf = _psf(voxel)
    m = mask.astype(np.float32)
    weight = np.clip(ndi.gaussian_filter(m, psf), 0.0, 1.0)
    pasted = ndi.gaussian_filter(target.astype(np.float32) * m, psf)
    out = image.astype(np.float32) * (1.0 - weight) + pasted
    return out, weight


def new_membranes(labels_before: np.ndarray, labels_after: np.ndarray, voxel: Voxel) -> np.ndarray:
    """Cell voxels that need a membrane drawn after an edit of the labels.

    Cell voxels within :data:`MEMBRANE_HALF_NM` of a boundary of ``labels_after`` that
    was not a boundary before (a cell that retracted from its neighbour, or swelled
    into it, gets its own membrane back), at least the boundary voxel itself.
    """
    fresh = boundaries(labels_after) & ~boundaries(labels_before)
    return grow(fresh, MEMBRANE_HALF_NM, voxel) & (labels_after != 0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip to 0-255."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
