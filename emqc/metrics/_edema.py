"""Edema: excess extracellular / electron-lucent void volume in a block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._components import label
from .._distance import distance_nm
from ..errors import InputError
from ._common import (
    MetricResult,
    check_number,
    check_probability,
    check_volume,
    check_voxel_size,
)

__all__ = ["Edema", "edema"]


@dataclass(frozen=True, kw_only=True)
class Edema(MetricResult):
    """Result of :func:`edema`.

    Attributes
    ----------
    score : float
        Excess void, 0 (at or below baseline) to 1 (at or above saturation); NaN if not
        valid.
    void_fraction : float
        Share of the tissue (the block less any vessel lumen) that is void.
    excess_void_fraction : float
        ``max(0, void_fraction - baseline_fraction)``.
    lumen_fraction : float
        Share of the block taken as vessel lumen and left out of the tissue.
    perivascular_void_fraction : float
        Share of the tissue within ``perivascular_nm`` of the lumen that is void (the
        halo); NaN without a lumen.
    void_contrast : float
        Median raw intensity in void minus that in the rest of the tissue, over the
        raw's 1-99 % range (positive: void paler, as electron-lucent space is in
        conventional contrast); NaN without ``raw``. Not part of the score.
    flags : tuple of str
        ``"lumen_excluded"`` (a lumen was found and left out), ``"no_tissue"`` (less than
        ``min_tissue_fraction`` of the block is tissue: not valid), ``"void_darker"``
        (void darker than tissue in ``raw``: inverted contrast or a wrong void map).
    """

    name: ClassVar[str] = "edema"

    void_fraction: float = math.nan
    excess_void_fraction: float = math.nan
    lumen_fraction: float = math.nan
    perivascular_void_fraction: float = math.nan
    void_contrast: float = math.nan


def edema(
    extracellular: Any,
    *,
    voxel_size_nm: Any,
    raw: Any = None,
    threshold: float = 0.5,
    baseline_fraction: float = 0.05,
    saturation_fraction: float = 0.4,
    lumen_min_radius_nm: float | None = 1000.0,
    perivascular_nm: float = 1000.0,
    min_tissue_fraction: float = 0.1,
) -> Edema:
    """Score the excess extracellular / electron-lucent void of one block.

    Edema shows in EM as swollen, pale, empty-looking space: expanded extracellular
    space, swollen astrocytic processes, perivascular halos round capillaries. Chemical
    fixation leaves only a few percent of extracellular space [1]_ (living brain about
    20 % [2]_), so the void fraction above a baseline measures the damage, after Garrood
    et al.'s area fraction of "ambiguous interstitial zones" [3]_:

    1. ``void = extracellular >= threshold``.
    2. A vessel lumen is not tissue: it is the morphological opening of ``void`` by a
       ball of radius ``lumen_min_radius_nm`` (the voids wider than any extracellular
       channel or swollen process; capillary lumens are 3-8 um across), keeping only
       the piece with the deepest voxel (one vessel per block at most; a halo is a
       shallower shell outside the wall). Its voxels are left out of the tissue ``T``.
       A pale zone that wide with no vessel is taken for a lumen too; the flag
       ``"lumen_excluded"`` and ``lumen_fraction`` show when this happened.
    3. ``f = |void & T| / |T|``. Perivascular halos are thin void shells outside the
       vessel wall, so they stay in ``void & T`` and count like any other void; their
       share of the tissue within ``perivascular_nm`` of the lumen is reported apart.
    4. ``score = clip((f - baseline_fraction) / (saturation_fraction -
       baseline_fraction), 0, 1)``.

    ``raw`` only checks that the void is pale (``void_contrast``); it never enters the
    score, so imaging changes do not move it.

    Parameters
    ----------
    extracellular : (Z, Y, X) ndarray of float
        Probability of extracellular space / electron-lucent void, in [0, 1].
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    raw : (Z, Y, X) ndarray, optional
        The EM image of the block, for the ``void_contrast`` check.
    threshold : float, optional
        Probability at which a voxel counts as void.
    baseline_fraction : float, optional
        Void fraction of well-fixed tissue, scored 0: a few percent after chemical
        fixation [1]_; use about 0.2 for cryo-fixed tissue.
    saturation_fraction : float, optional
        Void fraction scored 1: twice the extracellular space of living brain [2]_, at
        which neuropil is no longer dense enough to trace (a convention).
    lumen_min_radius_nm : float or None, optional
        Radius of the smallest ball that fits only in a vessel lumen; None: no lumen is
        looked for (everything void counts).
    perivascular_nm : float, optional
        Width of the shell round the lumen whose void is reported as the halo.
    min_tissue_fraction : float, optional
        Below this share of tissue (the rest lumen) the block is not judged.

    Returns
    -------
    Edema
        ``score`` 0 for well-fixed tissue, 1 for tissue at least ``saturation_fraction``
        void; NaN with ``valid=False`` and flag ``"no_tissue"`` if the block is nearly
        all lumen.

    Raises
    ------
    ValueError
        If a map is not 3-D, shapes differ, probabilities are NaN or outside [0, 1], or
        ``baseline_fraction >= saturation_fraction``.
    TypeError
        If an input is not numeric or a parameter is not a number.

    References
    ----------
    .. [1] Korogod N, Petersen CCH, Knott GW (2015). Ultrastructural analysis of adult
       mouse neocortex comparing aldehyde perfusion with cryo fixation. eLife 4:e05793.
    .. [2] Syková E, Nicholson C (2008). Diffusion in brain extracellular space.
       Physiol Rev 88:1277-1340.
    .. [3] Garrood et al. (2025). Evaluating ultrastructural preservation quality in
       banked brain tissue. Free Neuropathology 6:13.
    .. [4] Serra J (1982). Image Analysis and Mathematical Morphology. Academic Press
       (opening by a ball).

    Examples
    --------
    >>> import numpy as np
    >>> from emqc.metrics import edema
    >>> ecs = np.zeros((20, 20, 20), np.float32)
    >>> ecs[:5] = 1  # a quarter of the block is void
    >>> r = edema(ecs, voxel_size_nm=10)
    >>> round(r.void_fraction, 2), round(r.score, 2)
    (0.25, 0.57)
    """
    prob = check_probability("extracellular", extracellular)
    voxel = check_voxel_size(voxel_size_nm)
    threshold = check_number("threshold", threshold, lo=0, hi=1, open_lo=True)
    baseline = check_number("baseline_fraction", baseline_fraction, lo=0, hi=1)
    saturation = check_number("saturation_fraction", saturation_fraction, lo=0, hi=1)
    if saturation <= baseline:
        raise InputError(
            f"saturation_fraction ({saturation}) must be above baseline_fraction ({baseline})"
        )
    halo_nm = check_number("perivascular_nm", perivascular_nm, lo=0, open_lo=True)
    min_tissue = check_number("min_tissue_fraction", min_tissue_fraction, lo=0, hi=1)
    if lumen_min_radius_nm is not None:
        lumen_min_radius_nm = check_number(
            "lumen_min_radius_nm", lumen_min_radius_nm, lo=0, open_lo=True
        )
    image = None if raw is None else check_volume("raw", raw, shape=prob.shape)

    void = prob >= threshold
    lumen = _lumen(void, voxel, lumen_min_radius_nm)
    tissue = ~lumen
    n_tissue = int(np.count_nonzero(tissue))
    lumen_fraction = 1 - n_tissue / void.size
    flags = ["lumen_excluded"] if lumen_fraction > 0 else []
    if n_tissue < min_tissue * void.size or n_tissue == 0:
        return Edema(
            score=math.nan,
            valid=False,
            flags=(*flags, "no_tissue"),
            lumen_fraction=lumen_fraction,
        )

    tissue_void = void & tissue
    fraction = np.count_nonzero(tissue_void) / n_tissue
    excess = max(0.0, fraction - baseline)
    score = float(np.clip(excess / (saturation - baseline), 0, 1))

    halo = math.nan
    if lumen_fraction > 0:
        zone = tissue & (distance_nm(tissue, voxel) <= halo_nm)
        halo = float(np.count_nonzero(zone & void) / max(1, np.count_nonzero(zone)))

    contrast = math.nan
    if image is not None:
        contrast = _void_contrast(image, tissue_void, tissue & ~void)
        if contrast < 0:
            flags.append("void_darker")
    return Edema(
        score=score,
        flags=tuple(flags),
        void_fraction=float(fraction),
        excess_void_fraction=float(excess),
        lumen_fraction=float(lumen_fraction),
        perivascular_void_fraction=halo,
        void_contrast=contrast,
    )


def _lumen(void: np.ndarray, voxel: tuple[float, ...], radius: float | None) -> np.ndarray:
    """Opening of ``void`` by a ball of ``radius`` nm (the parts a ball that size fits in)."""
    if radius is None or not void.any():
        return np.zeros(void.shape, bool)
    if void.all():
        # No wall anywhere: a ball fits wherever the block is larger than it.
        depth_ok = float(np.min(np.asarray(void.shape) * np.asarray(voxel))) >= 2 * radius
        return np.full(void.shape, depth_ok)
    if not _may_hold_ball(void, voxel, radius):
        return np.zeros(void.shape, bool)
    depth = distance_nm(void, voxel)
    core = depth >= radius
    if not core.any():
        return np.zeros(void.shape, bool)
    # One lumen per block (capillaries lie tens of um apart): the core piece holding the
    # deepest voxel. A halo is a shell outside the wall, a separate and shallower piece.
    pieces, _ = label(core)
    core = pieces == pieces.flat[np.argmax(depth)]
    return void & (distance_nm(~core, voxel) <= radius)


def _may_hold_ball(void: np.ndarray, voxel: tuple[float, ...], radius: float) -> bool:
    """False only if no ball of ``radius`` nm fits in ``void``: a cheap test on a coarse grid.

    Cells of about ``radius / 4`` hold "any void"; a ball that fits in ``void`` leaves
    its centre's cell at least ``radius`` less one cell diagonal from every cell without
    void, so the distance transform of the small grid rules most blocks out at once.
    """
    factors = [max(1, int(radius // (4 * v))) for v in voxel]
    if max(factors) == 1:
        return True
    padded = np.pad(void, [(0, -n % f) for n, f in zip(void.shape, factors, strict=True)])
    cells = padded.reshape(
        [x for n, f in zip(padded.shape, factors, strict=True) for x in (n // f, f)]
    ).any(axis=(1, 3, 5))
    spacing = [f * v for f, v in zip(factors, voxel, strict=True)]
    if cells.all():
        return True
    depth = distance_nm(cells, spacing)
    return bool(depth.max() >= radius - math.hypot(*spacing))


def _void_contrast(image: np.ndarray, void: np.ndarray, rest: np.ndarray) -> float:
    """(median raw in void - median raw in ``rest``) / (raw's 1-99 % range); NaN if undefined."""
    if not void.any() or not rest.any():
        return math.nan
    lo, hi = np.percentile(image, [1, 99])
    if hi <= lo:
        return math.nan
    return float((np.median(image[void]) - np.median(image[rest])) / (hi - lo))
