"""Contrast of the *synthetic* neuropil: turn label geometry into a FIB-SEM-like image.

Synthetic data only: a stand-in for tests and demos, never real tissue. Polarity is
TEM-like, as in en-bloc stained FIB-SEM: membranes dark, cytoplasm mid-grey,
extracellular space and vessel lumen pale. The grey levels are set so that a volume at
8-10 nm has roughly the histogram of the 10 nm medulla FIB-SEM cube (median ~130, 1st
and 99th percentiles ~70 and ~195, membranes ~100 after blur).

The image is made in steps that only read the masks, so a damage simulator can change
the geometry and render it again; texture and noise are drawn before the masks are read,
so the same seed gives the same texture and noise for an edited geometry:

1. Cytoplasm: a grey level per cell plus smooth intracellular texture.
2. Compartments painted over it: extracellular space, vessel, mitochondria with lighter
   cristae, vesicle clouds with dark-rimmed vesicles, membranes, postsynaptic densities.
3. Additive Gaussian noise, then a Gaussian point-spread function (so the noise is
   correlated over about a voxel, as in the real data); the noise level is the one
   measured after the blur.
4. Rounding and clipping to uint8.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

# Grey levels before blur and noise, tuned against the medulla cube (module docstring).
CYTOPLASM, CELL_SPREAD, TEXTURE = 138.0, 60.0, 10.0  # mean, range across cells, texture std
EXTRACELLULAR, LUMEN, WALL = 205.0, 222.0, 112.0
MEMBRANE, PSD = 78.0, 50.0
MITOCHONDRION, CRISTAE, CRISTAE_PERIOD_NM = 78.0, 40.0, 40.0
CLOUD, VESICLE_RIM, VESICLE_LUMEN = -8.0, -55.0, 12.0  # changes in a vesicle cloud
VESICLE_PACKING = 0.3  # volume fraction of a cloud taken by vesicles


def interpolate(values: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """Separable linear interpolation of a 3-D grid at fractional indices given per axis.

    Parameters
    ----------
    values : (P, Q, R) ndarray
        Samples on the source grid, at least 2 along each axis.
    coords : list of three 1-D ndarrays
        Fractional source indices of the output rows, columns and planes.

    Returns
    -------
    (len(coords[0]), len(coords[1]), len(coords[2])) ndarray of float32
    """
    out = np.asarray(values, dtype=np.float32)
    for ax, c in enumerate(coords):
        q0 = np.clip(np.floor(c).astype(np.intp), 0, out.shape[ax] - 2)
        t = (c - q0).astype(np.float32).reshape([-1 if a == ax else 1 for a in range(3)])
        lo = np.take(out, q0, axis=ax)
        out = np.take(out, q0 + 1, axis=ax)
        out -= lo
        out *= t
        out += lo
    return out


def smooth_noise(shape, voxel_size_nm, length_nm: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth Gaussian noise of unit standard deviation, features about ``length_nm`` across.

    White noise on a grid ``length_nm / 2`` apart (never finer than the voxels), smoothed
    and linearly interpolated: cheap at any voxel size, and the same physical pattern for
    any voxel size with the same generator.

    Returns
    -------
    (Z, Y, X) ndarray of float32
    """
    step = [max(s, length_nm / 2) for s in voxel_size_nm]
    coarse = [math.ceil(n * s / c) + 3 for n, s, c in zip(shape, voxel_size_nm, step, strict=True)]
    field = rng.standard_normal(coarse, dtype=np.float32)
    field = ndi.gaussian_filter(field, [length_nm / (2 * c) for c in step], mode="wrap")
    field /= max(float(field.std()), 1e-12)
    coords = [
        (np.arange(n) * s + c) / c for n, s, c in zip(shape, voxel_size_nm, step, strict=True)
    ]
    return interpolate(field, coords)


def _gaussian_gain(sigma: float, truncate: float = 4.0) -> float:
    """Sum of squared weights of scipy's 1-D Gaussian kernel: the noise variance it keeps."""
    if sigma <= 0:
        return 1.0
    x = np.arange(-int(truncate * sigma + 0.5), int(truncate * sigma + 0.5) + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return float(np.sum((k / k.sum()) ** 2))


def _vesicles(img, clouds, voxel_size_nm, diameter_nm: float, rng) -> None:
    """Add dark-rimmed vesicles, packed at random inside the vesicle clouds, to ``img``."""
    where = np.flatnonzero(clouds)
    v = np.asarray(voxel_size_nm)
    radius = diameter_nm / 2
    count = int(VESICLE_PACKING * where.size * v.prod() / (4 / 3 * math.pi * radius**3))
    if count == 0:
        return
    centres = np.stack(np.unravel_index(rng.choice(where, count), clouds.shape), axis=1) * v
    centres = centres + rng.uniform(-0.5, 0.5, (count, 3)) * v
    rim = max(4.0, 0.5 * float(v.min()))
    reach = [
        np.arange(-math.ceil((radius + 2 * rim) / s), math.ceil((radius + 2 * rim) / s) + 1)
        for s in v
    ]
    offsets = np.stack([m.ravel() for m in np.meshgrid(*reach, indexing="ij")], axis=1)
    vox = np.rint(centres / v).astype(np.intp)[:, None, :] + offsets[None]
    dist = np.linalg.norm(vox * v - centres[:, None, :], axis=2)
    inside = np.all((vox >= 0) & (vox < clouds.shape), axis=2)
    vox, dist = vox[inside], dist[inside]
    flat = np.ravel_multi_index(vox.T, clouds.shape)
    keep = clouds.ravel()[flat]
    dist = dist[keep]
    weight = VESICLE_RIM * np.exp(-0.5 * ((dist - radius) / rim) ** 2) + VESICLE_LUMEN * (
        dist < radius - rim
    )
    flat, index = np.unique(flat[keep], return_inverse=True)
    # Overlapping vesicles (unresolved at coarse voxels) darken no more than one rim.
    img.ravel()[flat] += np.maximum(np.bincount(index, weights=weight), VESICLE_RIM).astype(
        np.float32
    )


def render_image(
    *,
    cell_ids,
    membrane,
    extracellular,
    mitochondria,
    vesicles,
    synapses,
    vessel,
    vessel_lumen,
    voxel_size_nm,
    params,
    rng,
) -> np.ndarray:
    """Render label geometry as a synthetic FIB-SEM image (steps 1-4 of the module docstring).

    Parameters
    ----------
    cell_ids : (Z, Y, X) ndarray of uint32
        Cell per voxel, 0 outside cells.
    membrane, extracellular, mitochondria, vesicles : (Z, Y, X) ndarray of bool
        Compartment masks.
    vessel, vessel_lumen : (Z, Y, X) ndarray of bool
        Blood vessel (lumen and wall) and its lumen.
    synapses : (Z, Y, X) ndarray of uint16
        Postsynaptic density and cleft per synapse, 0 elsewhere.
    voxel_size_nm : tuple of 3 float
    params : NeuropilParams
    rng : numpy.random.Generator

    Returns
    -------
    (Z, Y, X) ndarray of uint8
    """
    shape, v = cell_ids.shape, tuple(float(s) for s in voxel_size_nm)
    # 0. Every random draw that does not depend on the masks comes first, in a fixed order,
    #    so that an edited geometry is drawn with the same texture and noise.
    salt = np.uint32(rng.integers(2**32, dtype=np.uint64))
    texture = smooth_noise(shape, v, params.texture_nm, rng)
    noise = rng.standard_normal(shape, dtype=np.float32)
    waves = rng.standard_normal((6, 3))  # wave vectors of the cristae, then their phases
    waves *= 2 * math.pi / (CRISTAE_PERIOD_NM * np.linalg.norm(waves, axis=1, keepdims=True))
    phases = rng.uniform(0, 2 * math.pi, 6)
    vesicle_rng = np.random.default_rng(rng.integers(2**63))
    # 1. A grey level per cell (hashed from its id with the salt), and texture.
    mixed = (cell_ids.astype(np.uint32) ^ salt) * np.uint32(2654435761)
    img = (mixed >> np.uint32(16)).astype(np.float32) * np.float32(CELL_SPREAD / 65535)
    img += np.float32(CYTOPLASM - CELL_SPREAD / 2)
    img += TEXTURE * texture
    # 2. Compartments, later ones over earlier ones.
    img[extracellular] = EXTRACELLULAR
    img[vessel & ~vessel_lumen] = WALL
    img[vessel_lumen] = LUMEN
    mito = np.nonzero(mitochondria)
    if mito[0].size:  # a sum of plane waves: labyrinth-like lamellae about a period apart
        pos = [mito[ax].astype(np.float32) * np.float32(v[ax]) for ax in range(3)]
        total = sum(
            np.cos(sum(np.float32(k[ax]) * pos[ax] for ax in range(3)) + np.float32(phi))
            for k, phi in zip(waves, phases, strict=True)
        )
        img[mito] = MITOCHONDRION + CRISTAE * np.clip(total / math.sqrt(3) - 0.3, 0, 1)
    img[vesicles] += CLOUD
    _vesicles(img, vesicles, v, params.vesicle_diameter_nm, vesicle_rng)
    img[membrane] = MEMBRANE
    img[synapses != 0] = PSD
    # 3. Noise, then the point-spread function; the noise level is the one after the blur.
    sigma = [params.psf_fwhm_nm / (2 * math.sqrt(2 * math.log(2))) / s for s in v]
    if params.noise_std > 0:
        gain = math.prod(_gaussian_gain(s) for s in sigma)
        noise *= np.float32(params.noise_std / math.sqrt(gain))
        img += noise
    if max(sigma) > 0:
        img = ndi.gaussian_filter(img, sigma)
    # 4. To 8 bits.
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
