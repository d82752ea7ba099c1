"""Cell geometry of the *synthetic* neuropil: neurites, vessel, extracellular space, membranes.

Synthetic data only: a seeded stand-in for tests and demos, never real tissue.
Shapes are drawn in nanometres and rasterised only at the end, so voxel size decides how
finely the tissue is sampled, not how big its parts are. The steps (numbered in the code):

1. Neurite skeletons are persistent random walks from random points in random
   directions; a walk steers round the processes already drawn and stops when boxed in.
2. Each skeleton is drawn as a tube of ``CORE_FRACTION`` of its radius (its *core*) on a
   coarse grid that reaches a little past the volume, so cells at the faces are cut, not
   squashed.
3. Every voxel joins its nearest core (``distance_transform_edt(..., return_indices=True)``
   on the coarse grid, refined at full resolution near boundaries), so processes are long
   and round like neuropil, not polyhedra.
4. An optional blood vessel (lumen, endothelial wall) is cut out along a straight axis.
5. Extracellular space opens along cell boundaries where a smooth random field is high,
   thresholded to the requested volume fraction exactly (same seed, larger fraction: a
   superset of the same spaces).
6. Membranes are the cell voxels within half a membrane thickness of another label.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ._render import interpolate, smooth_noise

CORE_FRACTION = 0.8  # core radius / nominal radius; the gaps between cores are shared out
PARTITION_NM = 20.0  # spacing (at least) of the grid the partition is solved on
PAD_NM = 150.0  # that grid reaches this far past the volume's faces
ECS_PATCH_NM = 150.0  # size of the patches where extracellular space opens
ECS_WIDTH_NM = 15.0  # how fast a space widens as the patch field rises
ECS_REACH_NM = 1000.0  # no extracellular space farther than this from a cell boundary
BLOCKED = np.uint32(np.iinfo(np.uint32).max)  # core-grid value of an obstacle (the vessel)


@dataclass(frozen=True)
class Grid:
    """Voxel centres at ``origin + index * spacing`` (nm, z/y/x) of a grid of ``shape``."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def lo(self) -> np.ndarray:
        return np.asarray(self.origin) - np.asarray(self.spacing) / 2

    @property
    def hi(self) -> np.ndarray:
        return np.asarray(self.origin) + (np.asarray(self.shape) - 0.5) * np.asarray(self.spacing)

    def axis(self, ax: int) -> np.ndarray:
        return self.origin[ax] + np.arange(self.shape[ax]) * self.spacing[ax]

    def index(self, points_nm: np.ndarray) -> np.ndarray:
        return (points_nm - np.asarray(self.origin)) / np.asarray(self.spacing)

    def coords_of(self, other: Grid) -> list[np.ndarray]:
        """Fractional indices into this grid of the voxel centres of ``other``, per axis."""
        return [(other.axis(ax) - self.origin[ax]) / self.spacing[ax] for ax in range(3)]


def coarse_grid(fine: Grid) -> Grid:
    """Step 2: the partition grid: ``PARTITION_NM`` apart or coarser, ``PAD_NM`` past the faces."""
    spacing = [max(s, PARTITION_NM) for s in fine.spacing]
    span = fine.hi - fine.lo + 2 * PAD_NM
    return Grid(
        shape=tuple(max(math.ceil(n / s), 3) for n, s in zip(span, spacing, strict=True)),
        spacing=tuple(spacing),
        origin=tuple(fine.lo - PAD_NM + np.asarray(spacing) / 2),
    )


def ball_voxels(grid: Grid, centres_nm: np.ndarray, radius_nm: float) -> np.ndarray:
    """Flat indices (repeats allowed) of the voxels of ``grid`` within ``radius_nm`` of a centre."""
    reach = [np.arange(-int(radius_nm // s), int(radius_nm // s) + 1) for s in grid.spacing]
    mesh = np.meshgrid(*reach, indexing="ij")
    inside = sum((m * s / radius_nm) ** 2 for m, s in zip(mesh, grid.spacing, strict=True)) <= 1
    offsets = np.stack([m[inside] for m in mesh], axis=1)
    centres = np.rint(grid.index(np.atleast_2d(centres_nm))).astype(np.intp)
    centres = centres[np.r_[True, np.any(centres[1:] != centres[:-1], axis=1)]]  # along a path
    flat, keep = np.zeros(1, np.intp), True
    for ax, n in enumerate(grid.shape):  # row-major flat index, axis by axis
        i = centres[:, ax, None] + offsets[None, :, ax]
        keep = keep & (i >= 0) & (i < n)
        flat = flat * n + i
    return flat[keep]


@dataclass(frozen=True)
class Neurite:
    """One process: cell id, nominal radius (nm), class, skeleton ``(N, 3)`` in nm."""

    label: int
    radius_nm: float
    dendrite: bool
    path: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _walk(cores, grid: Grid, start, direction, *, label, step, sigma, reach, rng) -> list:
    """Step 1: points of a persistent random walk until it leaves ``grid`` or is boxed in.

    Plain floats, not numpy: the walk is a Python loop of many tiny steps.
    """
    lo, hi = grid.lo.tolist(), grid.hi.tolist()
    origin, spacing, shape = grid.origin, grid.spacing, grid.shape

    def ahead(p: list, d: list) -> bool:  # is the point ``reach`` ahead inside another core?
        i = [round((p[k] + reach * d[k] - origin[k]) / spacing[k]) for k in range(3)]
        if any(not 0 <= i[k] < shape[k] for k in range(3)):
            return False
        return cores[i[0], i[1], i[2]] not in (0, label)

    points, p, d = [], list(start), list(direction)
    for kick in (sigma * rng.standard_normal((int(4 * math.dist(lo, hi) / step) + 1, 3))).tolist():
        p = [p[k] + step * d[k] for k in range(3)]
        if any(not lo[k] <= p[k] <= hi[k] for k in range(3)):
            break
        points.append(p)
        d = _unit(np.add(d, kick)).tolist()
        if ahead(p, d):  # steer round the processes already there, or stop
            for scale in (0.5, 1.0, 2.0, 4.0):
                candidate = _unit(d + scale * rng.standard_normal(3)).tolist()
                if not ahead(p, candidate):
                    d = candidate
                    break
            else:
                break
    return points


def draw_neurites(cores: np.ndarray, grid: Grid, params, rng, *, fill_nm3: float) -> list[Neurite]:
    """Steps 1-2: skeletons and cores (dendrites first) until they fill ``fill_nm3``."""
    out: list[Neurite] = []
    targets = (params.dendrite_fraction * fill_nm3, (1 - params.dendrite_fraction) * fill_nm3)
    for dendrite, target in zip((True, False), targets, strict=True):
        # Each class fills its own share, so a dendrite that overshoots in a small volume
        # does not crowd out the axons.
        diameters = params.dendrite_diameter_nm if dendrite else params.axon_diameter_nm
        filled, failures = 0.0, 0
        # At least one axon, so that every volume has a cell.
        while (filled < target or not (dendrite or out)) and failures < 50:
            label, radius = len(out) + 1, rng.uniform(*diameters) / 2
            core = CORE_FRACTION * radius
            step = float(np.clip(core / 2, min(grid.spacing) / 2, 100.0))
            start = rng.uniform(grid.lo, grid.hi)
            i = np.clip(np.rint(grid.index(start)).astype(int), 0, np.asarray(grid.shape) - 1)
            if cores[tuple(i)] != 0:
                failures += 1
                continue
            walk = dict(
                label=label,
                step=step,
                reach=core + step,
                rng=rng,
                sigma=math.sqrt(step / params.persistence_length_nm),
            )
            d = _unit(rng.standard_normal(3))
            back = _walk(cores, grid, start, -d, **walk)
            path = np.array(back[::-1] + [list(start)] + _walk(cores, grid, start, d, **walk))
            voxels = ball_voxels(grid, path, core)
            cores.flat[voxels[cores.flat[voxels] == 0]] = label
            filled += math.pi * radius**2 * step * max(len(path) - 1, 1)
            out.append(Neurite(label, radius, dendrite, path))
    return out


def partition(cores: np.ndarray, coarse: Grid, fine: Grid):
    """Step 3: label every fine voxel with its nearest core.

    Returns ``(labels, distance_nm, grid)``: ``(Z, Y, X)`` uint32 on ``fine``, and the
    distance to the nearest cell boundary (all extracellular space needs) on ``grid``,
    the part of ``coarse`` around the volume.
    """
    sites = (cores != 0) & (cores != BLOCKED)
    near = ndi.distance_transform_edt(
        ~sites, sampling=coarse.spacing, return_distances=False, return_indices=True
    )
    lab = cores[tuple(near)]
    coords = coarse.coords_of(fine)
    # 3a. Distance to the nearest boundary, on the coarse grid cropped to the volume.
    crop = tuple(
        slice(max(int(c[0]) - 2, 0), min(int(c[-1]) + 4, n))
        for c, n in zip(coords, lab.shape, strict=True)
    )
    edge = mark_boundaries(lab[crop], [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    distance = (
        ndi.distance_transform_edt(~edge, sampling=coarse.spacing)
        if edge.any()
        else np.full(edge.shape, np.inf)
    )
    cropped = Grid(
        edge.shape,
        coarse.spacing,
        tuple(o + c.start * s for o, c, s in zip(coarse.origin, crop, coarse.spacing, strict=True)),
    )
    # 3b. A fine voxel in a coarse cell whose 8 corners agree takes their label ...
    q0 = [
        np.clip(np.floor(c).astype(np.intp), 0, n - 2)
        for c, n in zip(coords, lab.shape, strict=True)
    ]
    n0, n1, n2 = (n - 1 for n in lab.shape)
    base = lab[:n0, :n1, :n2]
    mixed = np.zeros(base.shape, bool)
    for c in itertools.product((0, 1), repeat=3):
        mixed |= lab[c[0] : c[0] + n0, c[1] : c[1] + n1, c[2] : c[2] + n2] != base
    labels = lab[np.ix_(*q0)]
    # 3c. ... the others the label of the nearest of the cores nearest to those 8 corners.
    band = np.nonzero(mixed[np.ix_(*q0)])
    pos = [fine.axis(ax).astype(np.float32)[band[ax]] for ax in range(3)]
    core_pos = [
        (coarse.origin[ax] + near[ax] * coarse.spacing[ax]).astype(np.float32).ravel()
        for ax in range(3)
    ]
    flat0 = np.ravel_multi_index([q0[ax][band[ax]] for ax in range(3)], lab.shape)
    strides = (lab.shape[1] * lab.shape[2], lab.shape[2], 1)
    best = np.full(flat0.shape, np.inf, np.float32)
    best_label = np.zeros(flat0.shape, np.uint32)
    for c in itertools.product((0, 1), repeat=3):
        flat = flat0 + int(np.dot(c, strides))
        d2 = sum((pos[ax] - core_pos[ax][flat]) ** 2 for ax in range(3))
        better = d2 < best
        best[better] = d2[better]
        best_label[better] = lab.ravel()[flat[better]]
    labels[band] = best_label
    return labels, distance, cropped


def line_distance(grid: Grid, point: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Step 4: distance (nm) of every voxel centre of ``grid`` to a straight line, float32."""
    rel = [
        (grid.axis(ax) - point[ax])
        .astype(np.float32)
        .reshape([-1 if a == ax else 1 for a in range(3)])
        for ax in range(3)
    ]
    along = sum(r * np.float32(direction[ax]) for ax, r in enumerate(rel))
    return np.sqrt(np.maximum(sum(r * r for r in rel) - along * along, 0))


def vessel_axis(fine: Grid, params, rng) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Step 4: axis point and direction, lumen and outer radius (nm) clipped to fit the volume."""
    extent = np.asarray(fine.shape) * np.asarray(fine.spacing)
    outer_max = 0.3 * float(extent.min())
    wall = min(params.vessel_wall_nm, outer_max / 2)
    lumen = min(params.vessel_diameter_nm / 2, outer_max - wall)
    point = fine.lo + extent * rng.uniform(0.4, 0.6, 3)
    return point, _unit(rng.standard_normal(3)), lumen, lumen + wall


def extracellular_space(
    distance, coarse: Grid, fine: Grid, fraction: float, rng, *, tissue, closed
):
    """Step 5: the ``fraction`` of ``tissue`` nearest to cell boundaries in the open patches.

    ``distance`` (nm, on ``coarse``) is the distance to the nearest cell boundary. Scored
    on the coarse grid and interpolated: the score is smooth, so nothing is lost.
    ``closed`` voxels (synaptic clefts, the vessel) stay closed but count in ``tissue``;
    voxels farther than ``ECS_REACH_NM`` from a boundary never open, so a volume with
    few boundaries may get less than ``fraction``.
    """
    reach = np.float32(ECS_REACH_NM / ECS_WIDTH_NM)
    score = smooth_noise(coarse.shape, coarse.spacing, ECS_PATCH_NM, rng)
    score -= np.minimum(distance / ECS_WIDTH_NM, 2 * reach).astype(np.float32)
    score = interpolate(score, coarse.coords_of(fine))
    eligible = tissue & ~closed & (score > -reach)  # nothing opens far from every boundary
    k = int(round(fraction * np.count_nonzero(tissue)))
    values = score[eligible]
    if k <= 0 or values.size == 0:
        return np.zeros(tissue.shape, bool)
    if k >= values.size:
        return eligible
    threshold = np.partition(values, values.size - k)[values.size - k]
    return eligible & (score >= threshold)


def membrane_offsets(voxel_size_nm, thickness_nm: float) -> list[tuple[int, ...]]:
    """Step 6: half the neighbourhood within ``thickness_nm / 2`` of a face (axes always in)."""
    radii = [max(thickness_nm / (2 * v) + 0.5, 1.0) for v in voxel_size_nm]
    span = [range(-int(r), int(r) + 1) for r in radii]
    return [
        o
        for o in itertools.product(*span)
        if o > (0, 0, 0) and sum((k / r) ** 2 for k, r in zip(o, radii, strict=True)) <= 1
    ]


def mark_boundaries(labels: np.ndarray, offsets) -> np.ndarray:
    """Voxels whose label differs from that of the voxel at one of ``offsets`` (either side)."""
    out = np.zeros(labels.shape, bool)
    for o in offsets:
        shape = labels.shape
        a = tuple(slice(max(-k, 0), max(n - max(k, 0), 0)) for k, n in zip(o, shape, strict=True))
        b = tuple(slice(max(k, 0), max(n - max(-k, 0), 0)) for k, n in zip(o, shape, strict=True))
        differs = labels[a] != labels[b]
        out[a] |= differs
        out[b] |= differs
    return out
