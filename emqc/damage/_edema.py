"""Edema: expanded extracellular space, swollen pale processes, perivascular voids."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _render as r
from ._common import Damaged, check_inputs, stream, unchanged

_FAMILY = 1
_SWELL, _VESSEL, _ECS, _NOISE = range(4)

#: Extracellular volume fraction of the tissue at severity 1 (tens of percent is severe
#: edema; chemically fixed tissue has a few percent, cryo-fixed 15-20 %).
ECS_FRACTION_MAX = 0.5
#: Fraction of the cells that swell at severity 1, and how far they swell (nm).
SWOLLEN_FRACTION_MAX = 0.3
SWELL_NM_MAX = 80.0
#: Capillary: lumen radius and wall (endothelium + basal lamina) thickness, in nm.
CAPILLARY_LUMEN_NM = 2000.0
CAPILLARY_WALL_NM = 300.0
#: Width of the perivascular halo at severity 1 (nm).
HALO_NM_MAX = 400.0
#: Correlation length of the patchiness of ECS expansion (nm).
PATCH_NM = 400.0


def edema(
    image: np.ndarray,
    *,
    labels: np.ndarray,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
    perivascular: bool = True,
) -> Damaged:
    """Simulate edema: water-filled, electron-lucent space opening between and in cells.

    When fixation is slow or the tissue is ischemic, ion pumps fail and water moves into
    cells and the interstitium; after fixation and embedding the water-filled space is
    empty and pale (electron-lucent) in EM. Three signs are drawn, all pale and nearly
    textureless (only the image's own voxel noise is kept):

    1. **Swollen processes**: a severity-dependent fraction of the cells (up to
       :data:`SWOLLEN_FRACTION_MAX`) dilates by up to :data:`SWELL_NM_MAX` nm into its
       neighbours, and its interior is lightened and flattened (organelles diluted).
    2. **Perivascular void** (``perivascular=True``): a capillary (lumen
       :data:`CAPILLARY_LUMEN_NM` nm in radius, wall :data:`CAPILLARY_WALL_NM` nm) is drawn
       along a random axis, its surface a tenth of the block's smallest extent inside one
       face, even if the block has none, and a pale halo ``severity * HALO_NM_MAX`` nm
       wide opens around it (swollen astrocytic end-feet / perivascular space), narrower
       where it would otherwise hold more than half of the new extracellular space (small
       blocks). The wall gets a new cell id; the lumen has label 0 but is not
       extracellular space.
    3. **Expanded extracellular space**: every cell retracts from its boundaries; the gap,
       centred on the old boundary, is widened in smooth random patches (correlation
       :data:`PATCH_NM` nm) until the extracellular fraction of the tissue (all but the
       vessel; the halo counts) reaches ``f0 + severity * (ECS_FRACTION_MAX - f0)``
       (``f0`` = the input's fraction). The shrunken cells get their own dark membrane
       back.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
        EM image, membranes dark and extracellular space pale (TEM-like polarity).
    labels : (Z, Y, X) ndarray of int
        Dense cell ids of ``image`` (0 = not in a cell).
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm; anisotropic sizes work.
    severity : float
        In [0, 1]. 0 returns the input unchanged; 0.5 gives about 25 % extracellular
        space (twice cryo-fixed tissue), 15 % of cells swollen and a 200 nm halo; 1 gives
        half the tissue as pale space, untraceable.
    seed : int
        The same seed gives the same output. With one seed the swollen cells, the vessel
        and the halo of a lower severity are part of those of a higher one, and the
        extracellular fraction only grows.
    perivascular : bool, optional
        Draw the capillary and its halo (default True).

    Returns
    -------
    Damaged
        ``extracellular`` marks the pale space (gaps and halo); ``params`` holds
        ``ecs_fraction`` (of the tissue), ``gap_nm`` (how far cells retracted where the
        patches are at their median), ``n_swollen``, ``swell_nm``, ``halo_nm``.

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
    .. [1] N. Korogod, C. C. H. Petersen, G. W. Knott (2015), Ultrastructural analysis of
       adult mouse neocortex comparing aldehyde perfusion with cryo fixation, eLife
       4:e05793 (extracellular space: ~2 % chemical vs ~15 % cryo-fixed).
    .. [2] Garrood et al. (2025), Evaluating ultrastructural preservation quality in banked
       brain tissue, Free Neuropathology 6:13 ("ambiguous interstitial zones").
    .. [3] J. R. Glausier, A. Konanur, D. A. Lewis (2019), Factors affecting
       ultrastructural quality in the prefrontal cortex of the postmortem human brain,
       J. Histochem. Cytochem. 67:185-202.

    Examples
    --------
    >>> from emqc.synth import synthetic_neuropil
    >>> from emqc.damage import edema
    >>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=0)
    >>> out = edema(vol.image, labels=vol.cell_ids, voxel_size_nm=10.0, severity=0.6, seed=1)
    >>> bool(out.extracellular.mean() > vol.extracellular.mean())
    True
    """
    inp = check_inputs(image, labels, voxel_size_nm, severity, seed)
    if not isinstance(perivascular, bool):
        raise TypeError(f"perivascular must be True or False, got {perivascular!r}")
    s, voxel, seed = inp.severity, inp.voxel_size_nm, inp.seed
    params = inp.base_params("edema") | {"perivascular": perivascular}
    if s == 0:
        return unchanged(inp, params)
    img = inp.image.astype(np.float32)
    before = inp.labels
    wall_id = int(before.max()) + 1
    if perivascular and wall_id > np.iinfo(np.uint32).max:
        raise ValueError(
            f"labels already use id {wall_id - 1}, leaving none for the capillary wall; "
            "relabel the cells or pass perivascular=False"
        )
    levels = r.measure_levels(inp.image, before, voxel)
    ecs0 = before == 0
    # 1. Swollen processes: the same cells at every severity (nested), dilated by s * max.
    lab, swollen, n_swollen = _swell(before, voxel, s, stream(seed, _FAMILY, _SWELL))
    # 2. The capillary, and the ECS fraction the tissue (all but the vessel) must reach.
    lumen = wall = halo = np.zeros(lab.shape, bool)
    if perivascular:
        lumen, wall, radial = _vessel(lab.shape, voxel, stream(seed, _FAMILY, _VESSEL))
    tissue = ~(lumen | wall)
    n_tissue = max(int(tissue.sum()), 1)
    f0 = float((ecs0 & tissue).sum() / n_tissue)
    target = f0 + s * max(ECS_FRACTION_MAX - f0, 0.0)
    # 3. The perivascular halo: s * HALO_NM_MAX wide, but at most half the ECS budget.
    halo_nm = 0.0
    if perivascular:
        halo, halo_nm = _halo(radial, tissue, s, 0.5 * (target - f0) * n_tissue)
        lab[wall] = wall_id
        lab[lumen | halo] = 0
    # 4. Retraction from the boundaries until the tissue holds the target ECS fraction.
    gap, gap_nm = _open_gaps(lab, tissue, target, voxel, stream(seed, _FAMILY, _ECS))
    lab[gap] = 0
    swollen &= (lab != 0) & ~wall
    extracellular = (gap | halo | (ecs0 & tissue)) & (lab == 0)
    # 5. Paint: pale space, pale swollen cells, the vessel, and membranes on new surfaces.
    rng = stream(seed, _FAMILY, _NOISE)
    mottle = r.smooth_field(lab.shape, voxel, 80.0, rng)
    swell_level = levels.cytoplasm + (0.45 + 0.3 * s) * (levels.pale - levels.cytoplasm)
    wall_level = levels.membrane + 0.5 * (levels.cytoplasm - levels.membrane)
    target_img = img.copy()
    target_img[extracellular] = levels.pale + 0.3 * levels.noise * mottle[extracellular]
    target_img[lumen] = levels.pale - 0.3 * (levels.pale - levels.cytoplasm)
    target_img[wall] = wall_level + r.texture(lab.shape, voxel, levels.texture, rng)[wall]
    target_img[swollen] = swell_level + 0.5 * levels.noise * mottle[swollen]
    edited = extracellular | lumen | wall | swollen
    membrane = r.new_membranes(before, lab, voxel)
    target_img[membrane] = levels.membrane
    out, weight = r.composite(img, target_img, edited | membrane, voxel)
    out += weight * r.texture(lab.shape, voxel, levels.noise, rng)
    params |= {
        "ecs_fraction_input": f0,
        "ecs_fraction_target": target,
        "ecs_fraction": float((extracellular & tissue).sum() / n_tissue),
        "gap_nm": gap_nm,
        "n_swollen": n_swollen,
        "swell_nm": s * SWELL_NM_MAX,
        "halo_nm": halo_nm,
    }
    return Damaged(r.to_uint8(out), lab, extracellular, None, params)


def _swell(labels: np.ndarray, voxel, s: float, rng: np.random.Generator):
    """Dilate a nested random subset of the cells by ``s * SWELL_NM_MAX`` into neighbours."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    draw = rng.random(ids.size)  # one number per cell: the subsets are nested in s
    chosen = ids[draw < SWOLLEN_FRACTION_MAX * s]
    lab = labels.copy()
    if chosen.size == 0:
        return lab, np.zeros(labels.shape, bool), 0
    inside = np.isin(labels, chosen)
    dist, idx = r.distance_nm(inside, voxel, indices=True)
    grow = ~inside & (labels != 0) & (dist <= s * SWELL_NM_MAX)
    lab[grow] = labels[tuple(i[grow] for i in idx)]
    return lab, inside | grow, int(chosen.size)


def _vessel(shape, voxel, rng: np.random.Generator):
    """Lumen and wall of a capillary whose surface cuts the block near a face, and the
    distance of every voxel from its axis (nm)."""
    extent = np.array([n * v for n, v in zip(shape, voxel, strict=True)])
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    normal = np.cross(axis, rng.standard_normal(3))
    normal /= np.linalg.norm(normal)
    outer = CAPILLARY_LUMEN_NM + CAPILLARY_WALL_NM
    # The outer surface passes 0.4 of the smallest extent from the block centre.
    point = extent / 2 + normal * (outer + 0.4 * extent.min())
    rel = [
        ((np.arange(n) + 0.5) * v - p)
        .astype(np.float32)
        .reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, v, p) in enumerate(zip(shape, voxel, point, strict=True))
    ]
    along = rel[0] * axis[0] + rel[1] * axis[1] + rel[2] * axis[2]
    radial = np.sqrt(np.maximum(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2 - along**2, 0.0))
    lumen = radial <= CAPILLARY_LUMEN_NM
    wall = ~lumen & (radial <= outer)
    return lumen, wall, radial


def _halo(radial, tissue, s: float, budget: float):
    """The shell of tissue round the wall, ``s * HALO_NM_MAX`` wide or ``budget`` voxels."""
    depth = radial - (CAPILLARY_LUMEN_NM + CAPILLARY_WALL_NM)
    width = s * HALO_NM_MAX
    shell = depth[tissue & (depth <= width)]
    if shell.size > budget:  # small blocks: the halo may not be all their edema
        k = int(budget)
        width = float(np.partition(shell, k - 1)[k - 1]) if k > 0 else -1.0
    return tissue & (depth <= width), max(width, 0.0)


def _open_gaps(lab, tissue, target, voxel, rng):
    """Voxels that become extracellular: nearest to a boundary, weighted by random patches."""
    cells = tissue & (lab != 0)
    n_new = int(round(target * tissue.sum())) - int((tissue & (lab == 0)).sum())
    gap = np.zeros(lab.shape, bool)
    if n_new <= 0 or not cells.any():
        return gap, 0.0
    # Distance of each cell voxel from its cell's surface; boundary voxels sit half a voxel
    # from the interface, and lognormal patches (fixed per seed) widen the gap in places.
    dist = r.distance_nm(r.boundaries(lab) | ~tissue, voxel) + 0.5 * min(voxel)
    patches = np.exp(0.4 * r.smooth_field(lab.shape, voxel, PATCH_NM, rng))
    score = (dist / patches)[cells]
    n_new = min(n_new, int(np.isfinite(score).sum()))  # no boundary at all: nothing opens
    if n_new <= 0:
        return gap, 0.0
    threshold = float(np.partition(score, n_new - 1)[n_new - 1])
    gap[cells] = score <= threshold
    # The half-gap where the patch factor is at its median (1): the typical retraction.
    return gap, threshold
