"""Membrane breakdown: gaps in membranes, vesiculation and blebbing along them."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _render as r
from ._common import Damaged, check_inputs, stream, unchanged

_FAMILY = 2
_PATCHES, _VESICLES, _NOISE = range(3)

#: Correlation length of the broken patches of membrane (nm).
PATCH_NM = 120.0
#: Half-width of the dark band a membrane leaves in the image (nm), removed at a gap.
BAND_NM = 25.0
#: Vesicles (diameter 40-90 nm) and blebs (120-250 nm) per µm² of cell boundary at severity 1.
VESICLES_PER_UM2 = 25.0
BLEBS_PER_UM2 = 1.0
VESICLE_RADIUS_NM = (20.0, 45.0)
BLEB_RADIUS_NM = (60.0, 125.0)


def membrane_breakdown(
    image: np.ndarray,
    *,
    labels: np.ndarray,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Simulate membrane breakdown: gaps, fragmentation, vesiculation and blebs.

    Lipid membranes that were not stabilised before dehydration, or that autolysis or ice
    disrupted, lose their continuity: in EM the crisp dark line between two processes
    has gaps, and the lipid gathers into small pale vesicles and larger blebs strung
    along where the membrane was, so that processes are no longer closed.

    1. **Gaps**: the cell boundaries (voxels whose 6-neighbour has another id) are cut
       into patches by a smooth random field (correlation :data:`PATCH_NM` nm); the
       lowest-ranked patches, a fraction ``severity`` of all boundary voxels, break. Their
       dark band (within :data:`BAND_NM` nm) is replaced by the cytoplasm intensity
       measured around it (normalized convolution), with cytoplasm-like granular texture
       and the image's own voxel noise.
    2. **Vesiculation and blebbing**: round vesicles (radius 20-45 nm) and blebs
       (60-125 nm), pale inside with a thin dark rim, are centred on broken boundary
       voxels, up to :data:`VESICLES_PER_UM2` and :data:`BLEBS_PER_UM2` per µm² of
       boundary at severity 1. They are membrane debris: label 0, not extracellular.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
        EM image, membranes dark (TEM-like polarity).
    labels : (Z, Y, X) ndarray of int
        Dense cell ids of ``image``.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    severity : float
        In [0, 1]. 0 returns the input unchanged; 0.5 breaks half of the boundary in
        patches a few hundred nm long with scattered vesicles; 1 removes every membrane
        and leaves only debris: no process can be followed.
    seed : int
        The same seed gives the same output; broken patches and debris are nested in
        severity.

    Returns
    -------
    Damaged
        ``membrane_broken`` marks the input's boundary voxels that lost their membrane;
        ``params`` holds ``broken_fraction``, ``intact_fraction``, ``n_vesicles``,
        ``n_blebs``.

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
    .. [1] J. R. Glausier, A. Konanur, D. A. Lewis (2019), Factors affecting
       ultrastructural quality in the prefrontal cortex of the postmortem human brain,
       J. Histochem. Cytochem. 67:185-202.
    .. [2] Garrood et al. (2025), Evaluating ultrastructural preservation quality in banked
       brain tissue, Free Neuropathology 6:13.

    Examples
    --------
    >>> from emqc.synth import synthetic_neuropil
    >>> from emqc.damage import membrane_breakdown
    >>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=0)
    >>> out = membrane_breakdown(vol.image, labels=vol.cell_ids, voxel_size_nm=10.0,
    ...                          severity=0.5, seed=1)
    >>> round(out.params["broken_fraction"], 1)
    0.5
    """
    inp = check_inputs(image, labels, voxel_size_nm, severity, seed)
    s, voxel, seed = inp.severity, inp.voxel_size_nm, inp.seed
    params = inp.base_params("membrane_breakdown")
    if s == 0:
        return unchanged(inp, params, broken=True)
    img = inp.image.astype(np.float32)
    lab = inp.labels.copy()
    levels = r.measure_levels(inp.image, lab, voxel)
    boundary = r.boundaries(lab)
    n_boundary = int(boundary.sum())
    # 1. Rank boundary voxels by a smooth field; the lowest fraction s break (nested in s).
    field = r.smooth_field(lab.shape, voxel, PATCH_NM, stream(seed, _FAMILY, _PATCHES))
    broken = np.zeros(lab.shape, bool)
    n_broken = int(round(s * n_boundary))
    if n_broken:
        values = field[boundary]
        order = np.argsort(values, kind="stable")
        hit = np.zeros(values.size, bool)
        hit[order[:n_broken]] = True
        broken[boundary] = hit
    # Membrane band of the broken boundary, where no intact membrane is as near.
    band = r.grow(broken, BAND_NM, voxel) & ~r.grow(boundary & ~broken, BAND_NM, voxel)
    interior = ~r.grow(boundary, 2 * BAND_NM, voxel)
    noise_rng = stream(seed, _FAMILY, _NOISE)
    target = r.local_mean(img, interior, voxel, 40.0)
    target += r.texture(lab.shape, voxel, levels.texture, noise_rng, corr_nm=12.0)
    # 2. Debris centred on broken boundary voxels: candidates fixed per seed, kept if u < s.
    debris, rim, n_ves, n_bleb = _debris(lab.shape, boundary, broken, voxel, s, seed)
    target[debris] = levels.pale - 0.15 * (levels.pale - levels.cytoplasm)
    target[rim] = levels.membrane
    lab[debris] = 0
    mask = band | debris
    out, weight = r.composite(img, target, mask, voxel)
    out += weight * r.texture(lab.shape, voxel, levels.noise, noise_rng)
    params |= {
        "broken_fraction": n_broken / n_boundary if n_boundary else 0.0,
        "intact_fraction": 1.0 - n_broken / n_boundary if n_boundary else 1.0,
        "n_vesicles": n_ves,
        "n_blebs": n_bleb,
    }
    extracellular = (inp.labels == 0) & (lab == 0)
    return Damaged(r.to_uint8(out), lab, extracellular, broken, params)


def _debris(shape, boundary, broken, voxel, s, seed):
    """Vesicles and blebs: pale spheres with a dark rim, on broken boundary voxels."""
    rng = stream(seed, _FAMILY, _VESICLES)
    # Boundary area: each interface is marked on both sides, ~1 voxel thick.
    area_um2 = boundary.sum() * float(np.prod(voxel)) / (2 * min(voxel)) / 1e6
    counts = [rng.poisson(rate * area_um2) for rate in (VESICLES_PER_UM2, BLEBS_PER_UM2)]
    flat = np.flatnonzero(boundary)
    debris = np.zeros(shape, bool)
    rim = np.zeros(shape, bool)
    rim_nm = max(12.0, 1.2 * min(voxel))
    kept = [0, 0]
    for kind, (count, (lo, hi)) in enumerate(
        zip(counts, (VESICLE_RADIUS_NM, BLEB_RADIUS_NM), strict=True)
    ):
        # Every draw happens at every severity, so the kept debris is nested in s.
        where = rng.choice(flat, size=count) if flat.size else np.zeros(0, int)
        radii = rng.uniform(lo, hi, size=count)
        keep = (rng.random(count) < s) & broken.flat[where]
        for centre, radius in zip(where[keep], radii[keep], strict=True):
            _sphere(debris, rim, np.unravel_index(centre, shape), radius, rim_nm, voxel)
        kept[kind] = int(keep.sum())
    return debris, rim & debris, kept[0], kept[1]


def _sphere(inside, rim, centre, radius, rim_nm, voxel) -> None:
    """Mark a ball of ``radius`` nm (its outer ``rim_nm`` in ``rim``), clipped to the volume."""
    box = tuple(
        slice(max(0, c - int(radius // v)), min(n, c + int(radius // v) + 1))
        for c, v, n in zip(centre, voxel, inside.shape, strict=True)
    )
    axes = np.ogrid[box]
    dist = np.sqrt(sum(((a - c) * v) ** 2 for a, c, v in zip(axes, centre, voxel, strict=True)))
    ball = dist <= radius
    # A later ball overwrites the rim of an earlier one where they overlap (they fuse).
    rim[box] = (rim[box] & ~ball) | (ball & (dist > radius - rim_nm))
    inside[box] |= ball
