"""What every metric shares: input checks, the result record, compartments of a boundary map.

Private to :mod:`emqc.metrics`. Physical sizes are in nanometres throughout; a size in
voxels is derived from ``voxel_size_nm`` where it is needed and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from scipy import ndimage as ndi

from .._components import label
from .._distance import distance_nm
from ..errors import InputError

#: Probabilities may overshoot [0, 1] by this much (float rounding in a network's output).
PROB_TOLERANCE = 1e-3
#: Largest ball (voxels) dilated directly; a larger one goes through a distance transform.
_MAX_BALL = 125

R = TypeVar("R", bound="MetricResult")


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    """Base of every metric's result: a score in [0, 1] and why it may be missing.

    Attributes
    ----------
    score : float
        The metric, in [0, 1] when ``valid``; NaN when the block cannot be judged.
    valid : bool
        False when the block holds nothing the metric can judge (then ``score`` is NaN
        and ``flags`` says why); a table of blocks keeps the row, flagged.
    flags : tuple of str
        Short machine-readable notes (``"no_boundary"``, ``"lumen_excluded"``, ...);
        each metric documents its own.
    """

    score: float
    valid: bool = True
    flags: tuple[str, ...] = ()

    #: Name of the metric (the key in a per-block table).
    name: ClassVar[str] = "metric"

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` (Python scalars, tuples as lists), for tables and JSON."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, np.generic):
                value = value.item()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``data`` names a field the result does not have.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown field(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def check_voxel_size(voxel_size_nm: Any) -> tuple[float, float, float]:
    """``voxel_size_nm`` as 3 positive finite floats (z, y, x); one number means isotropic."""
    if voxel_size_nm is None:
        raise TypeError("voxel_size_nm is required: a number or 3 numbers (z, y, x) in nm")
    values = np.ravel(np.asarray(voxel_size_nm, dtype=object))
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3:
        raise InputError(
            f"voxel_size_nm must be a number or 3 numbers (z, y, x), got {voxel_size_nm!r}"
        )
    out = tuple(check_number("voxel_size_nm", v) for v in values)
    if min(out) <= 0:
        raise InputError(f"voxel_size_nm must be > 0 along every axis, got {voxel_size_nm!r}")
    return out  # type: ignore[return-value]


def check_number(
    name: str, value: Any, *, lo: float = -math.inf, hi: float = math.inf, open_lo: bool = False
) -> float:
    """``value`` as a float in ``[lo, hi]`` (``(lo, hi]`` if ``open_lo``); TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    if value < lo or value > hi or (open_lo and value == lo):
        bracket = "(" if open_lo else "["
        raise InputError(f"{name} must be in {bracket}{lo}, {hi}], got {value!r}")
    return value


def check_volume(name: str, array: Any, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A real-valued ``(Z, Y, X)`` array, of ``shape`` if given; TypeError/ValueError otherwise."""
    array = np.asarray(array)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if array.ndim != 3:
        raise InputError(f"{name} must be a (Z, Y, X) array, got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise InputError(
            f"{name} has shape {array.shape} but the other inputs have shape {tuple(shape)}; "
            "every map of one block must have the same shape"
        )
    if array.size == 0:
        raise InputError(f"{name} is empty (shape {array.shape})")
    return array


def check_probability(name: str, array: Any, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A ``(Z, Y, X)`` probability map as float32 in [0, 1]; ValueError for NaN or out of range.

    Values within :data:`PROB_TOLERANCE` outside [0, 1] (float rounding) are clipped.
    """
    array = check_volume(name, array, shape=shape)
    if array.dtype == bool:
        return array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 1:
            raise InputError(
                f"{name} holds integers in [{lo}, {hi}]; a probability map must be float in "
                "[0, 1] (divide 8-bit maps by 255 first)"
            )
        return array.astype(np.float32)
    lo, hi = float(np.min(array)), float(np.max(array))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} holds NaN or infinite values; a probability map must be finite")
    if lo < -PROB_TOLERANCE or hi > 1 + PROB_TOLERANCE:
        raise InputError(
            f"{name} must hold probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]"
        )
    return np.clip(array, 0, 1, dtype=np.float32)


def block_extent_nm(shape: tuple[int, ...], voxel_size_nm: tuple[float, ...]) -> np.ndarray:
    """Physical size (nm) of a block along each axis."""
    return np.asarray(shape, float) * np.asarray(voxel_size_nm, float)


def box_half_width(radius_nm: float, voxel_size_nm: tuple[float, ...]) -> tuple[int, ...]:
    """Half-width in voxels, per axis, of a box reaching ``radius_nm`` (at least one voxel)."""
    return tuple(max(1, math.ceil(radius_nm / s - 1e-9)) for s in voxel_size_nm)


def distinct_labels_nearby(labels: np.ndarray, half_width: tuple[int, ...]) -> np.ndarray:
    """True where a box of ``2 * half_width + 1`` voxels holds two different nonzero labels.

    Uses the separable maximum and minimum filters (background 0 is excluded from the
    minimum by lifting it above every label), so its cost does not grow with the box;
    on the narrowest unsigned type that holds the labels (the filters are memory-bound).
    """
    size = tuple(2 * h + 1 for h in half_width)
    top = int(labels.max()) if labels.size else 0
    if labels.dtype.kind in "iu" and labels.size and labels.min() >= 0:
        labels = labels.astype(np.min_scalar_type(top + 1), copy=False)
    lifted = np.where(labels == 0, top + 1, labels).astype(labels.dtype, copy=False)
    lo = ndi.minimum_filter(lifted, size=size, mode="nearest")
    hi = ndi.maximum_filter(labels, size=size, mode="nearest")
    return (hi > 0) & (lo <= top) & (lo < hi)


def compartment_cores(
    open_space: np.ndarray, *, voxel_size_nm: tuple[float, ...], gap_tolerance_nm: float
) -> tuple[np.ndarray, int]:
    """Label the compartments of ``open_space`` that gaps narrower than ``gap_tolerance_nm`` do not join.

    A compartment core is a connected (6-neighbour) set of voxels at least
    ``(gap_tolerance_nm + s) / 2`` from the nearest closed voxel, ``s`` the coarsest
    voxel size. A hole of width ``w`` in a wall reaches ``(w + s) / 2`` from the wall's
    voxels at its centre, so it joins two cores exactly when ``w >= gap_tolerance_nm``;
    by the same count a process thinner than the tolerance leaves no core (it cannot be
    told from a gap). The seeds of a seeded watershed are chosen the same way.

    Parameters
    ----------
    open_space : (Z, Y, X) ndarray of bool
        Voxels a compartment may occupy (e.g. below the boundary threshold).
    voxel_size_nm : (float, float, float)
    gap_tolerance_nm : float

    Returns
    -------
    labels : (Z, Y, X) ndarray of int32
        0 outside the cores.
    n : int
        Number of cores.
    """
    if not open_space.any():
        return np.zeros(open_space.shape, np.int32), 0
    if open_space.all():
        return np.ones(open_space.shape, np.int32), 1
    core = at_least_from(~open_space, (gap_tolerance_nm + max(voxel_size_nm)) / 2, voxel_size_nm)
    return label(core)


def at_least_from(
    mask: np.ndarray, radius_nm: float, voxel_size_nm: tuple[float, ...]
) -> np.ndarray:
    """Voxels with no ``mask`` voxel closer than ``radius_nm`` (outside the block: none).

    Exactly ``distance_transform_edt(~mask, sampling=voxel_size_nm) >= radius_nm``; for a
    small radius a dilation by the ball of offsets shorter than it is done instead, about
    ten times faster than the distance transform.
    """
    radius = radius_nm - 1e-6
    ball = _ball(radius, voxel_size_nm)
    if ball.sum() <= _MAX_BALL:
        return ~dilate_by_ball(mask, ball)
    return distance_nm(~mask, voxel_size_nm) >= radius


def within(mask: np.ndarray, radius_nm: float, voxel_size_nm: tuple[float, ...]) -> np.ndarray:
    """Voxels at most ``radius_nm`` from a ``mask`` voxel (``mask`` itself included).

    Exactly ``distance_transform_edt(~mask, sampling=voxel_size_nm) <= radius_nm`` (to
    a nanometre's millionth): the dilation by the ball of offsets no longer than the
    radius when that ball is small, else the distance transform.
    """
    ball = _ball(radius_nm + 1e-6, voxel_size_nm)
    if ball.sum() <= _MAX_BALL:
        return dilate_by_ball(mask, ball)
    return distance_nm(~mask, voxel_size_nm) <= radius_nm


def dilate_by_ball(mask: np.ndarray, ball: np.ndarray) -> np.ndarray:
    """``ndi.binary_dilation(mask, structure=ball)`` for a ball-shaped footprint, faster.

    ``ball`` has odd sides, is symmetric about its centre and convex along the last axis
    (each of its rows is one run centred on the middle, as every digital ball is).
    The dilation is then the union, over the rows, of ``mask`` dilated along the last
    axis by the row's half-width and shifted by the row's offset: a few whole-array ORs
    per row (scipy visits every footprint voxel at every voxel). The same result to the
    bit, outside the array counting as background; 13 rows instead of 33 voxels for the
    20 nm ball at 10 nm voxels.
    """
    mask = np.asarray(mask, dtype=bool)
    centre = [n // 2 for n in ball.shape]
    runs: dict[tuple[int, ...], int] = {}
    for lead in np.ndindex(*ball.shape[:-1]):
        row = np.flatnonzero(ball[lead])
        if row.size == 0:
            continue
        half = centre[-1] - int(row[0])
        if int(row[-1]) != centre[-1] + half or row.size != 2 * half + 1:
            return ndi.binary_dilation(mask, structure=ball)  # not a ball: scipy's way
        runs[tuple(i - c for i, c in zip(lead, centre, strict=False))] = half
    along: dict[int, np.ndarray] = {}
    for half in set(runs.values()):
        wide = mask.copy()
        for k in range(1, min(half, mask.shape[-1] - 1) + 1):
            wide[..., k:] |= mask[..., :-k]
            wide[..., :-k] |= mask[..., k:]
        along[half] = wide
    out = np.zeros_like(mask)
    for offset, half in runs.items():
        dst, src = [], []
        for d, n in zip(offset, mask.shape, strict=False):
            if abs(d) >= n:
                break
            dst.append(slice(max(d, 0), n + min(d, 0)))
            src.append(slice(max(-d, 0), n - max(d, 0)))
        else:
            out[tuple(dst)] |= along[half][tuple(src)]
    return out


def max_pool(array: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Maximum over blocks of ``factors`` voxels, as ``block_reduce(array, factors, np.max)``.

    scikit-image's ``block_reduce`` pads the far faces with 0 to whole blocks and takes
    each block's maximum over a strided view of all its axes at once (0.27 s for a
    256³ float32 map, 2 × 2 × 2 blocks, one core). This takes pairwise maxima of
    strided slices one axis at a time instead (0.09 s): the same values, as a maximum is
    exact in any order, and a partial block at a far face is the maximum of its voxels
    and 0.
    """
    out = np.asarray(array)
    if len(factors) != out.ndim or any(int(f) < 1 for f in factors):
        raise ValueError(f"need one factor >= 1 per axis of {out.shape}, got {tuple(factors)}")
    for axis, f in enumerate(int(f) for f in factors):
        if f == 1:
            continue
        n = out.shape[axis]
        whole = n // f * f
        lead = (slice(None),) * axis
        pooled = out[(*lead, slice(0, whole, f))].copy()
        for k in range(1, f):
            np.maximum(pooled, out[(*lead, slice(k, whole, f))], out=pooled)
        if whole < n:
            rest = out[(*lead, slice(whole, n))].max(axis=axis, keepdims=True)
            pooled = np.concatenate([pooled, np.maximum(rest, 0).astype(out.dtype)], axis=axis)
        out = pooled
    return out


def _ball(radius_nm: float, voxel_size_nm: tuple[float, ...]) -> np.ndarray:
    """Offsets (as a boolean footprint) shorter than ``radius_nm``."""
    half = [max(0, math.ceil(radius_nm / v) - 1) for v in voxel_size_nm]
    grids = np.meshgrid(
        *[np.arange(-h, h + 1) * v for h, v in zip(half, voxel_size_nm, strict=True)],
        indexing="ij",
    )
    return sum(g**2 for g in grids) < radius_nm**2


def component_extents_nm(
    labels: np.ndarray, n: int, voxel_size_nm: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel count and bounding-box diagonal (nm) of labels ``1..n``."""
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    slices = ndi.find_objects(labels, max_label=n)
    diag = np.zeros(n)
    for i, sl in enumerate(slices):
        if sl is not None:
            span = [(s.stop - s.start) * v for s, v in zip(sl, voxel_size_nm, strict=True)]
            diag[i] = math.hypot(*span)
    return sizes, diag


def check_labels(segmentation: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Integer labels >= 0 of ``shape``, numbered compactly if the ids are sparse."""
    labels = check_volume("segmentation", segmentation, shape=shape)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"segmentation must hold integer labels, got dtype {labels.dtype}")
    if labels.min() < 0:
        raise InputError(f"segmentation labels must be >= 0, got minimum {labels.min()}")
    if labels.max() > min(labels.size, 2**20):
        # Sparse ids (e.g. body ids of a whole volume): number them 1..n, keeping 0.
        ids, inverse = np.unique(labels, return_inverse=True)
        labels = (inverse.reshape(labels.shape) + (ids[0] != 0)).astype(np.int64)
    return labels


def segment_spans(
    labels: np.ndarray, voxel: tuple[float, ...], *, cells: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, volumes (nm³) and spans (nm) of the segments, from their second moments.

    The span is the length of the uniform rod with the segment's variance along its
    principal axis, ``sqrt(12 * lambda_1 + s**2)`` (``s``: the voxel size along that
    axis), so a straight run of ``n`` voxels spans ``n * s``; a bend or a side branch
    shortens it, so it is a lower bound on how far the segment reaches, and a single
    stray voxel barely moves it. Moments are summed over z slabs of about 2^20 voxels.

    ``cells``, if given, says that ``labels`` label a coarser grid of cells: voxel ``i``
    of axis ``a`` (of ``voxel`` size) lies in cell ``cells[a][i]``, and the result is
    that of the voxel labels ``labels[np.ix_(*cells)]``, computed from each cell's
    moments (they factor per axis) without repeating the labels onto the voxels.
    """
    n = int(labels.max())
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    scale = np.asarray(voxel, float)
    if cells is None:
        cells = [np.arange(k) for k in labels.shape]
    shape = [len(c) for c in cells]
    centre = (np.asarray(shape) - 1) / 2
    # Per axis and cell: voxel count, sum and sum of squares of the voxels' coordinates.
    factors = []  # per axis: (count, sum, sum of squares) of each cell's voxel coordinates
    for c, k, m, v in zip(cells, labels.shape, centre, scale, strict=True):
        coord = (np.arange(len(c)) - m) * v
        factors.append((
            np.bincount(c, minlength=k).astype(float),
            np.bincount(c, weights=coord, minlength=k),
            np.bincount(c, weights=coord * coord, minlength=k),
        ))  # fmt: skip
    # The ten moments as (per-axis factor z, y, x): 0 count, 1 sum, 2 sum of squares.
    terms = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2),
             (1, 1, 0), (1, 0, 1), (0, 1, 1))  # fmt: skip
    sums = np.zeros((10, n + 1))
    step = max(1, 2**20 // (labels.shape[1] * labels.shape[2]))
    for z0 in range(0, labels.shape[0], step):
        flat = labels[z0 : z0 + step].ravel()
        for k, (i, j, h) in enumerate(terms):
            w = (
                factors[0][i][z0 : z0 + step, None, None]
                * factors[1][j][None, :, None]
                * factors[2][h][None, None, :]
            )
            sums[k] += np.bincount(flat, weights=w.ravel(), minlength=n + 1)
    ids = np.flatnonzero(sums[0] > 0)
    ids = ids[ids > 0]
    count = sums[0, ids]
    mean = sums[1:4, ids] / count
    second = sums[4:, ids] / count
    cov = np.empty((len(ids), 3, 3))
    for k, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))):
        cov[:, a, b] = cov[:, b, a] = second[k] - mean[a] * mean[b]
    values, vectors = np.linalg.eigh(cov)
    along = vectors[:, :, -1]  # principal axis (largest eigenvalue last)
    step_nm2 = (along**2) @ scale**2
    spans = np.sqrt(np.maximum(12 * values[:, -1], 0) + step_nm2)
    return ids.astype(np.int64), count * float(np.prod(scale)), spans
