"""Synapses and mitochondria of the *synthetic* neuropil (labels only, no contrast).

Synthetic data only: a stand-in for tests and demos, never real tissue.

Synapses, in two passes around the partition of :mod:`._geometry`:

1. Before it, boutons: balls on axon skeletons, drawn into the core grid so the axon
   swells there (en-passant boutons).
2. After it, each bouton's partner is the neighbouring cell with the largest contact
   (dendrites weighted three times), found on a grid about 16 nm apart; at the contact
   point nearest the bouton's centre the partner gets a postsynaptic density (PSD), the
   bouton a vesicle cloud just behind its membrane. The cleft is kept closed to
   extracellular space.

Mitochondria are capsules centred on a skeleton, kept inside their own cell, clear of
its membrane and of vesicle clouds, added until they fill the requested volume fraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ._geometry import CORE_FRACTION, PARTITION_NM, Grid, Neurite, ball_voxels


@dataclass(frozen=True)
class Bouton:
    """A presynaptic swelling: axon id, centre (nm), radius (nm)."""

    axon: int
    centre: np.ndarray
    radius_nm: float


def place_boutons(cores, coarse: Grid, fine: Grid, cells: list[Neurite], params, rng):
    """Pass 1: ``density x volume`` boutons (stochastic rounding) on axons inside the volume."""
    expected = params.synapse_density_per_um3 * np.prod(fine.hi - fine.lo) / 1e9
    count = int(expected) + int(rng.random() < expected - int(expected))
    margin = np.minimum(params.bouton_diameter_nm[1] / 2, 0.25 * (fine.hi - fine.lo))
    axons = [c for c in cells if not c.dendrite]
    inside = [
        np.flatnonzero(np.all((a.path >= fine.lo + margin) & (a.path <= fine.hi - margin), axis=1))
        for a in axons
    ]
    weights = np.array([i.size for i in inside], float)
    out: list[Bouton] = []
    if count == 0 or weights.sum() == 0:
        return out
    for _ in range(count):
        j = rng.choice(len(axons), p=weights / weights.sum())
        centre = axons[j].path[rng.choice(inside[j])]
        radius = rng.uniform(*params.bouton_diameter_nm) / 2
        voxels = ball_voxels(coarse, centre, CORE_FRACTION * radius)
        free = np.isin(cores.flat[voxels], (0, axons[j].label))
        cores.flat[voxels[free]] = axons[j].label
        out.append(Bouton(axons[j].label, centre, radius))
    return out


def _box(fine: Grid, centre, reach_nm: float, stride=(1, 1, 1)) -> tuple[slice, ...]:
    lo = np.maximum(np.floor(fine.index(centre - reach_nm)).astype(int), 0)
    hi = np.minimum(np.ceil(fine.index(centre + reach_nm)).astype(int) + 1, fine.shape)
    return tuple(slice(int(a), int(b), s) for a, b, s in zip(lo, hi, stride, strict=True))


def _positions(fine: Grid, box) -> list[np.ndarray]:
    """Voxel-centre coordinates (nm) of ``box``, shaped to broadcast over it."""
    return [
        fine.axis(ax)[box[ax]].reshape([-1 if a == ax else 1 for a in range(3)]) for ax in range(3)
    ]


def _partner(labels, fine: Grid, bouton: Bouton, dendrites: set, exclude: int):
    """The partner of a bouton and the contact point (nm) nearest its centre, or ``None``."""
    stride = tuple(max(1, round(PARTITION_NM / s)) for s in fine.spacing)
    box = _box(fine, bouton.centre, 1.5 * bouton.radius_nm, stride)
    sub, axes = labels[box], [fine.axis(ax)[box[ax]] for ax in range(3)]
    ids, points = [], []
    for ax in range(3):  # pairs of neighbours (i, i + 1) along each axis, one in the bouton
        a = (slice(None),) * ax + (slice(None, -1),)
        b = (slice(None),) * ax + (slice(1, None),)
        for near, other in ((sub[a], sub[b]), (sub[b], sub[a])):
            hit = np.nonzero(
                (near == bouton.axon) & (other != bouton.axon) & (other != 0) & (other != exclude)
            )
            ids.append(other[hit])
            mid = [axes[k][hit[k]] for k in range(3)]
            mid[ax] = (mid[ax] + axes[ax][hit[ax] + 1]) / 2
            points.append(np.stack(mid, axis=1))
    ids, points = np.concatenate(ids), np.concatenate(points)
    if ids.size == 0:
        return None
    unique, counts = np.unique(ids, return_counts=True)
    score = counts * np.where(np.isin(unique, list(dendrites)), 3, 1)
    partner = int(unique[np.argmax(score)])
    points = points[ids == partner]
    return partner, points[np.argmin(np.linalg.norm(points - bouton.centre, axis=1))]


def build_synapses(labels, fine: Grid, boutons, cells, params, *, exclude: int):
    """Pass 2: PSD/cleft labels, vesicle clouds, closed zones and records of the synapses.

    Returns ``(synapses, vesicles, closed, records)``: ``(Z, Y, X)`` uint16, bool, bool and
    a list of ``(label, pre_id, post_id, (z, y, x))``.
    """
    synapses = np.zeros(labels.shape, np.uint16)
    vesicles = np.zeros(labels.shape, bool)
    closed = np.zeros(labels.shape, bool)
    records: list[tuple] = []
    dendrites = {c.label for c in cells if c.dendrite}
    t, half = params.membrane_thickness_nm, params.psd_length_nm / 2
    v = np.asarray(fine.spacing)
    for bouton in boutons:
        found = _partner(labels, fine, bouton, dendrites, exclude)
        if found is None or len(records) == np.iinfo(np.uint16).max:
            continue
        partner, point = found
        box = _box(fine, point, half + params.psd_thickness_nm + t + 2 * v.max())
        sub = labels[box]
        pre, post = sub == bouton.axon, sub == partner
        if not pre.any() or not post.any():
            continue
        r2 = sum((p - point[ax]) ** 2 for ax, p in enumerate(_positions(fine, box)))
        disc = r2 <= half**2
        to_pre = ndi.distance_transform_edt(~pre, sampling=fine.spacing)
        to_post = ndi.distance_transform_edt(~post, sampling=fine.spacing)
        psd = post & disc & (to_pre <= t / 2 + params.psd_thickness_nm + v.min() / 2)
        if not psd.any():
            continue
        label = len(records) + 1
        synapses[box][psd | (pre & disc & (to_post <= t / 2 + v.min() / 2))] = label
        closed[box] |= r2 <= (half + t) ** 2
        # The vesicle cloud sits just behind the presynaptic membrane, towards the centre.
        inward = bouton.centre - point
        norm = float(np.linalg.norm(inward))
        if norm < 1e-6:
            inward, norm = np.array([1.0, 0.0, 0.0]), 1.0
        radius = params.vesicle_cloud_diameter_nm / 2
        centre = point + inward / norm * (radius + t / 2)
        cbox = _box(fine, centre, radius)
        ball = sum((p - centre[ax]) ** 2 for ax, p in enumerate(_positions(fine, cbox)))
        vesicles[cbox] |= (labels[cbox] == bouton.axon) & (ball <= radius**2)
        voxel = np.clip(np.rint(fine.index(point)).astype(int), 0, np.asarray(fine.shape) - 1)
        records.append((label, bouton.axon, partner, tuple(int(i) for i in voxel)))
    return synapses, vesicles, closed, records


def mitochondria(labels, fine: Grid, cells: list[Neurite], params, rng, *, avoid):
    """Capsules along skeletons, inside their own cell, outside ``avoid`` (membranes ...).

    Returns a ``(Z, Y, X)`` bool mask filling about ``params.mitochondria_fraction``.
    """
    out = np.zeros(labels.shape, bool)
    margin = params.membrane_thickness_nm + 20.0
    d_lo, d_hi = params.mitochondria_diameter_nm
    fits = [c for c in cells if 2 * (c.radius_nm - margin) >= d_lo]
    inside = [
        np.flatnonzero(np.all((c.path >= fine.lo) & (c.path <= fine.hi), axis=1)) for c in fits
    ]
    weights = np.array([c.radius_nm**2 * i.size for c, i in zip(fits, inside, strict=True)])
    if not fits or weights.sum() == 0:
        return out
    target = params.mitochondria_fraction * labels.size
    for _ in range(500):
        if np.count_nonzero(out) >= target:
            break
        j = rng.choice(len(fits), p=weights / weights.sum())
        cell = fits[j]
        radius = rng.uniform(d_lo, min(d_hi, 2 * (cell.radius_nm - margin))) / 2
        half = max(rng.uniform(*params.mitochondria_length_nm) / 2 - radius, 0.0)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(cell.path, axis=0), axis=1))])
        points = cell.path[np.abs(arc - arc[rng.choice(inside[j])]) <= half]
        step = max(radius / 2, min(fine.spacing) / 2)
        dense = [
            np.linspace(a, b, int(np.linalg.norm(b - a) // step) + 2)
            for a, b in zip(points[:-1], points[1:], strict=True)
        ]
        voxels = ball_voxels(fine, np.concatenate(dense) if dense else points, radius)
        out.flat[voxels[(labels.flat[voxels] == cell.label) & ~avoid.flat[voxels]]] = True
    return out
