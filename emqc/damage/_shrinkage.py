"""Dehydration / shrinkage: compressed, swirly, darker tissue with less extracellular space."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from . import _render as r
from ._common import Damaged, check_inputs, stream, unchanged

_FAMILY = 3
_AXES, _SWIRL, _NOISE = range(3)

#: Volume lost at severity 1: about half, as osmotic shrinkage without aldehyde fixation.
VOLUME_LOSS_MAX = 0.5
#: RMS displacement of the swirl at severity 1, and its correlation length (nm).
SWIRL_NM_MAX = 50.0
SWIRL_CORR_NM = 400.0
#: Fraction of the cytoplasm-to-membrane contrast lost to darkening at severity 1.
DARKEN_MAX = 0.35
#: Fraction of the extracellular space that collapses at severity 1.
ECS_LOSS_MAX = 0.9


def shrinkage(
    image: np.ndarray,
    *,
    labels: np.ndarray,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Simulate dehydration shrinkage: compressed, "swirly", dark tissue.

    Cryoprotectants and dehydrating agents draw water out of tissue that was not
    stabilised by aldehydes: cells shrink osmotically (about 50 % of the volume), the
    extracellular space collapses, the cytoplasm condenses and stains darker, and the
    compressed processes buckle into swirling, distorted shapes.

    1. **Compression**: the tissue is scaled by ``k_i`` per axis, with
       ``prod(k_i) = 1 - VOLUME_LOSS_MAX * severity`` and a random split between axes
       (anisotropic). The block keeps its grid, so it shows more, smaller cells; tissue
       beyond the block's faces is taken as their mirror image.
    2. **Swirl**: a smooth divergence-free displacement (curl of a random vector field,
       correlation :data:`SWIRL_CORR_NM` nm, RMS up to :data:`SWIRL_NM_MAX` nm) bends
       processes without changing volume (to first order). Image (linear) and labels
       (nearest neighbour) are warped by the same map, so the labels stay consistent.
    3. **Collapse of extracellular space**: the label-0 voxels nearest to a cell join
       that cell until the extracellular fraction is ``1 - ECS_LOSS_MAX * severity`` of
       the input's; they are painted as the cytoplasm around them, with a membrane where
       two cells now meet. (Labels cannot tell a vessel lumen from extracellular space:
       a lumen shrinks too.)
    4. **Darkening**: intensities are pulled towards the membrane level, losing up to
       :data:`DARKEN_MAX` of the cytoplasm-membrane contrast (condensed cytoplasm).

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
        EM image, membranes dark (TEM-like polarity).
    labels : (Z, Y, X) ndarray of int
        Dense cell ids of ``image``.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    severity : float
        In [0, 1]. 0 returns the input unchanged; 0.5 removes a quarter of the volume
        with a 25 nm swirl and 17 % darkening; 1 halves the volume: dark, buckled tissue.
    seed : int
        The same seed gives the same output.

    Returns
    -------
    Damaged
        ``params`` holds ``scale`` (per axis), ``volume_factor``, ``swirl_nm``,
        ``darken``, ``ecs_fraction`` (after the edit).

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` not integer, or a parameter has the wrong
        type.

    Warns
    -----
    UserWarning
        If the image looks inverted (cell boundaries brighter than cytoplasm).

    References
    ----------
    .. [1] N. Korogod, C. C. H. Petersen, G. W. Knott (2015), eLife 4:e05793 (chemical
       fixation and dehydration shrink the extracellular space).
    .. [2] R. L. McIntyre, G. M. Fahy (2015), Aldehyde-stabilized cryopreservation,
       Cryobiology 71:448-458 (dehydration by cryoprotectant without aldehyde: shrunken,
       dark, distorted tissue).

    Examples
    --------
    >>> from emqc.synth import synthetic_neuropil
    >>> from emqc.damage import shrinkage
    >>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=0)
    >>> out = shrinkage(vol.image, labels=vol.cell_ids, voxel_size_nm=10.0, severity=1.0, seed=1)
    >>> round(out.params["volume_factor"], 2)
    0.5
    >>> bool(out.image.mean() < vol.image.mean())
    True
    """
    inp = check_inputs(image, labels, voxel_size_nm, severity, seed)
    s, voxel, seed = inp.severity, inp.voxel_size_nm, inp.seed
    params = inp.base_params("shrinkage")
    if s == 0:
        return unchanged(inp, params)
    levels = r.measure_levels(inp.image, inp.labels, voxel)
    shape = inp.image.shape
    # 1. Per-axis scale: a random split of the volume loss (same split at every severity).
    weights = stream(seed, _FAMILY, _AXES).dirichlet([4.0, 4.0, 4.0])
    volume = 1.0 - VOLUME_LOSS_MAX * s
    scale = volume**weights
    # 2. Source coordinates: compression about the centre plus the swirl (in voxels).
    swirl = _swirl(shape, voxel, stream(seed, _FAMILY, _SWIRL))
    coords = []
    for axis, n in enumerate(shape):
        x = np.arange(n, dtype=np.float32) - (n - 1) / 2.0
        shape1 = [1, 1, 1]
        shape1[axis] = n
        src = (x / scale[axis] + (n - 1) / 2.0).reshape(shape1)
        coords.append(src + swirl[axis] * (s * SWIRL_NM_MAX / voxel[axis]))
    img = ndi.map_coordinates(inp.image.astype(np.float32), coords, order=1, mode="mirror")
    lab = ndi.map_coordinates(inp.labels, coords, order=0, mode="mirror").astype(np.uint32)
    # 3. Collapse the extracellular space to (1 - ECS_LOSS_MAX * s) of the input's
    #    fraction, filling the label-0 voxels nearest to a cell first.
    ecs_target = float((inp.labels == 0).mean()) * (1.0 - ECS_LOSS_MAX * s)
    n_close = int((lab == 0).sum()) - int(round(ecs_target * lab.size))
    if n_close > 0 and (lab != 0).any():
        rng = stream(seed, _FAMILY, _NOISE)
        warped = lab.copy()
        dist, idx = r.distance_nm(lab != 0, voxel, indices=True)
        empty = np.flatnonzero(lab == 0)
        # Distances come in steps of a voxel: a random fraction of one breaks the ties.
        score = dist.flat[empty] + rng.random(empty.size) * min(voxel)
        closed = np.zeros(shape, bool)
        closed.flat[empty[np.argsort(score, kind="stable")[:n_close]]] = True
        lab[closed] = lab[tuple(i[closed] for i in idx)]
        target = r.local_mean(img, lab != 0, voxel, 40.0)
        membrane = r.new_membranes(warped, lab, voxel)
        target[membrane] = levels.membrane
        img, weight = r.composite(img, target, closed | membrane, voxel)
        img += weight * r.texture(shape, voxel, levels.noise, rng)
    # 4. Darken towards the membrane level (condensed cytoplasm).
    darken = DARKEN_MAX * s
    img = levels.membrane + (img - levels.membrane) * (1.0 - darken)
    params |= {
        "scale": [float(k) for k in scale],
        "volume_factor": float(np.prod(scale)),
        "swirl_nm": s * SWIRL_NM_MAX,
        "darken": darken,
        "ecs_fraction": float((lab == 0).mean()),
    }
    return Damaged(r.to_uint8(img), lab, lab == 0, None, params)


def _swirl(shape, voxel, rng: np.random.Generator) -> list[np.ndarray]:
    """A divergence-free displacement field with unit RMS: the curl of a smooth vector field."""
    potential = [r.smooth_field(shape, voxel, SWIRL_CORR_NM, rng) for _ in range(3)]
    a_z, a_y, a_x = (_gradient(p, voxel) for p in potential)  # each: (d/dz, d/dy, d/dx)
    # u = curl(A), written per component in (z, y, x) order.
    field = [a_y[2] - a_x[1], a_x[0] - a_z[2], a_z[1] - a_y[0]]
    rms = float(np.sqrt(sum((u**2).mean() for u in field)))
    return [u / rms if rms > 0 else u for u in field]


def _gradient(field: np.ndarray, voxel) -> list[np.ndarray]:
    """Per-axis derivative in nm⁻¹ (zero along an axis of a single voxel)."""
    return [
        np.gradient(field, v, axis=axis) if field.shape[axis] > 1 else np.zeros_like(field)
        for axis, v in enumerate(voxel)
    ]
