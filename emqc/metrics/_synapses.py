"""Synapse traceability: are synapses found, and can both partners be followed from them?"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage as ndi

from .._components import label as label_mask
from ._common import (
    MetricResult,
    block_extent_nm,
    check_labels,
    check_number,
    check_probability,
    check_voxel_size,
    max_pool,
    segment_spans,
    within,
)

__all__ = [
    "MIN_EXPECTED_SYNAPSES",
    "REFERENCE_SYNAPSES_PER_UM3",
    "SEGMENTATION_VOXEL_NM",
    "SynapseTraceability",
    "synapse_traceability",
]

#: Default density of visible synapses in well-preserved neuropil (per µm³): the low
#: end of the 0.7-1 per µm³ of mammalian cortex (DeFelipe et al. 1999). Set it from
#: well-preserved tissue of the region and species scored.
REFERENCE_SYNAPSES_PER_UM3 = 1.0

#: Visibility is measured only in blocks where well-preserved tissue would show at least
#: this many synapses: with fewer, no synapse at all is a common chance (Poisson: 5 % at 3).
MIN_EXPECTED_SYNAPSES = 3.0

_FULL = np.ones((3, 3, 3), bool)
#: Voxel size (nm) the boundary map is segmented at by default: twice the FIB-SEM
#: network's 10 nm working voxel. After max-pooling a process needs about two such
#: voxels (40 nm) across to keep an interior; chosen for speed (8x fewer voxels to
#: flood) and checked by the validation benchmark (BENCHMARKS.md), not tuned on it.
SEGMENTATION_VOXEL_NM = 20.0

#: The effective trace length is at most this share of the block's smallest side.
_MAX_TRACE_SHARE = 0.75


@dataclass(frozen=True, kw_only=True)
class SynapseTraceability(MetricResult):
    """Result of :func:`synapse_traceability`.

    Attributes
    ----------
    score : float
        ``sqrt(neurite_continuity * traced_fraction * visibility)``: 0 when the block
        has no synapse (flag ``"no_synapses"``); NaN if not valid (nothing segmented,
        or no synapse in a block too small to expect one).
    n_synapses : int
        Synapses found (components of ``synapse >= threshold`` of at least
        ``min_synapse_nm3``).
    synapses_per_um3 : float
    visibility : float
        ``min(1, synapses_per_um3 / reference_synapses_per_um3)``; NaN in a block too
        small to expect :data:`MIN_EXPECTED_SYNAPSES` synapses at the reference density
        (flag ``"visibility_unmeasured"``).
    reference_synapses_per_um3 : float
        Density of visible synapses expected in well-preserved tissue.
    traced_fraction : float
        Mean over the synapses of their partner credit: 0 when a partner is missing or
        both sides are one segment, else ``min(1, span / trace_nm)`` of the shorter
        partner; NaN without synapses.
    n_traced, n_merged, n_partner_missing, n_short : int
        Synapses traced (both partners span ``trace_nm``); with the same segment on
        both sides (merged); with no segment on a side; with a partner shorter than
        ``trace_nm`` (partial credit).
    neurite_continuity : float
        Segmented volume weighted by ``min(1, span / trace_nm)`` of its segment.
    trace_nm : float
        Trace length used: ``min_trace_nm``, or less in a small block (flag
        ``"trace_shortened"``).
    n_segments : int
    flags : tuple of str
        ``"no_synapses"``, ``"trace_shortened"``, ``"visibility_unmeasured"``,
        ``"no_segments"`` (nothing segmented: not valid).
    """

    name: ClassVar[str] = "synapse_traceability"

    n_synapses: int = 0
    synapses_per_um3: float = math.nan
    visibility: float = math.nan
    reference_synapses_per_um3: float = REFERENCE_SYNAPSES_PER_UM3
    traced_fraction: float = math.nan
    n_traced: int = 0
    n_merged: int = 0
    n_partner_missing: int = 0
    n_short: int = 0
    neurite_continuity: float = math.nan
    trace_nm: float = math.nan
    n_segments: int = 0


def synapse_traceability(
    synapse: Any,
    boundary: Any,
    *,
    voxel_size_nm: Any,
    segmentation: Any = None,
    min_trace_nm: float = 1000.0,
    threshold: float = 0.5,
    min_synapse_nm3: float = 1e5,
    partner_reach_nm: float = 20.0,
    min_partner_share: float = 0.1,
    reference_synapses_per_um3: float = REFERENCE_SYNAPSES_PER_UM3,
    segmentation_voxel_nm: float = SEGMENTATION_VOXEL_NM,
) -> SynapseTraceability:
    """Score whether a block's synapses can be traced to both partner neurites.

    A synapse is useful to a connectome only if it is visible *and* both processes it
    joins can be followed [1]_. Damage that dissolves membranes also dissolves the
    densities and clefts that make synapses visible, and merges the partners it leaves
    (the damage models of :mod:`emqc.damage`), so the score asks three things: do
    neurites run long, are synapses as visible as in well-preserved tissue, and can both
    partners of each be followed. Steps:

    1. Synapses are 26-connected components of ``synapse >= threshold`` of at least
       ``min_synapse_nm3`` (a third of the smallest postsynaptic density [2]_).
    2. Segments come from ``segmentation``, or from
       :func:`emqc.segmentation.segment` of ``boundary`` (watershed + agglomeration)
       on a grid of about ``segmentation_voxel_nm``: the map is max-pooled by the
       whole number of voxels closest below it along each axis (a membrane is never
       opened by the pooling), segmented there and the labels repeated back onto
       the block's voxels. Neurites are followed over a micrometre, not traced to
       the voxel; at 10 nm voxels the 20 nm default floods 8 times fewer voxels.
    3. Its *partners* are the two segments with most voxels within
       ``partner_reach_nm`` of it (the density lies in the postsynaptic process, the
       cleft and vesicles against the presynaptic one). If the runner-up holds less
       than ``min_partner_share`` of those voxels it is a bystander at the rim, and the
       partners count as *merged* (one segment on both sides); with no segment at all
       they are *missing*. Either way the synapse cannot be assigned: credit 0.
    4. A segment's *span* is the length of the uniform rod with its variance along
       its principal axis, ``sqrt(12 * lambda_1 + s**2)`` (nm): the length of a
       straight neurite, less for a bent one, so a lower bound on how far it can be
       followed in the block. A partner is followed over ``min(1, span / trace_nm)``
       of the trace length ``trace_nm = min(min_trace_nm, 0.75 * smallest block
       side)``; a synapse's credit is that of its shorter partner.
    5. ``traced_fraction`` = mean credit of the synapses (a graded share: one voxel
       more or less of a partner does not flip a synapse between traced and not);
       ``neurite_continuity = sum_s V_s * min(1, span_s / trace_nm) / sum_s V_s`` over
       segments ``s`` of volume ``V_s``: long, unbroken neurites give 1.
    6. ``visibility = min(1, synapses_per_um3 / reference_synapses_per_um3)``: the
       synapses seen against those well-preserved tissue shows. It needs a block
       where that tissue shows at least :data:`MIN_EXPECTED_SYNAPSES`; in a smaller
       one it is not measured (NaN, flag ``"visibility_unmeasured"``) and left out of
       the score.
    7. ``score = sqrt(neurite_continuity * traced_fraction * visibility)``; a block
       without synapses scores 0 (flag ``"no_synapses"``: none can be traced; in a
       cell-body layer or white matter that is the region, not damage), or is not
       valid (NaN) when it is too small to measure visibility.

    Parameters
    ----------
    synapse : (Z, Y, X) ndarray of float
        Synapse (density/cleft) probability in [0, 1].
    boundary : (Z, Y, X) ndarray of float
        Membrane probability in [0, 1], segmented when ``segmentation`` is None.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    segmentation : (Z, Y, X) ndarray of int, optional
        Segment labels (0: none); computed from ``boundary`` if not given.
    min_trace_nm : float, optional
        How far each partner must be followable (1 um: several synapse sizes).
    threshold : float, optional
        Probability at which a voxel counts as synapse.
    min_synapse_nm3 : float, optional
        Smallest synapse volume (nm³); smaller blobs are noise.
    partner_reach_nm : float, optional
        How far from the synapse its partners are looked for (about a cleft's width).
    min_partner_share : float, optional
        Share of the voxels near the synapse the second partner must hold. On seeded
        synthetic neuropil the true second partner held at least 0.18 in 19 of 20
        synapses, a bystander at most 0.10.
    reference_synapses_per_um3 : float, optional
        Visible synapses per µm³ in well-preserved tissue of the kind scored, as the
        synapse network detects them: :data:`REFERENCE_SYNAPSES_PER_UM3` (mammalian
        cortex [4]_) by default. Denser neuropil needs its own: the committed network finds
        at least 11.6 per µm³ in 9 of 10 blocks of the fly medulla cube's training part
        (the value the validation benchmark uses).

    Returns
    -------
    SynapseTraceability
        ``score`` 1 when neurites run long, synapses are at least as dense as the
        reference and every synapse's partners are distinct, long segments; 0 when
        nothing can be followed or no synapse is seen. NaN with ``valid=False`` if the
        segmentation is empty, or if no synapse is seen in a block too small to
        expect :data:`MIN_EXPECTED_SYNAPSES`.

    Raises
    ------
    ValueError
        If maps are not 3-D, shapes differ, probabilities are NaN or outside [0, 1],
        labels are negative, or a parameter is out of range.
    TypeError
        If an input is not numeric or a parameter is not a number.

    References
    ----------
    .. [1] Helmstaedter M (2013). Cellular-resolution connectomics: challenges of dense
       neural circuit reconstruction. Nat Methods 10:501-507.
    .. [2] Harris KM, Weinberg RJ (2012). Ultrastructure of synapses in the mammalian
       brain. Cold Spring Harb Perspect Biol 4:a005587.
    .. [3] Buhmann J et al. (2021). Automatic detection of synaptic partners in a
       whole-brain Drosophila electron microscopy data set. Nat Methods 18:771-774
       (partners as the segments on either side of a detected synapse).
    .. [4] DeFelipe J, Marco P, Busturia I, Merchan-Perez A (1999). Estimation of the
       number of synapses in the cerebral cortex: methodological considerations.
       Cereb Cortex 9:722-732.

    Examples
    --------
    >>> import numpy as np
    >>> from emqc.metrics import synapse_traceability
    >>> seg = np.ones((40, 40, 140), np.uint32)
    >>> seg[:, 20:] = 2  # two long neurites touching along y = 20
    >>> syn = np.zeros(seg.shape, np.float32)
    >>> syn[15:25, 18:22, 60:70] = 1  # a synapse between them
    >>> r = synapse_traceability(syn, np.zeros_like(syn), voxel_size_nm=10, segmentation=seg)
    >>> r.n_synapses, r.traced_fraction, round(r.score, 2)
    (1, 1.0, 1.0)
    """
    syn = check_probability("synapse", synapse)
    prob = check_probability("boundary", boundary, shape=syn.shape)
    voxel = check_voxel_size(voxel_size_nm)
    min_trace = check_number("min_trace_nm", min_trace_nm, lo=0, open_lo=True)
    threshold = check_number("threshold", threshold, lo=0, hi=1, open_lo=True)
    min_volume = check_number("min_synapse_nm3", min_synapse_nm3, lo=0)
    reach = check_number("partner_reach_nm", partner_reach_nm, lo=0)
    min_share = check_number("min_partner_share", min_partner_share, lo=0, hi=0.5)
    reference = check_number(
        "reference_synapses_per_um3", reference_synapses_per_um3, lo=0, open_lo=True
    )
    flags: list[str] = []
    grid_nm = check_number("segmentation_voxel_nm", segmentation_voxel_nm, lo=0)
    cells = None
    if segmentation is None:
        coarse, cells = _segment_on_grid(prob, voxel, grid_nm)
        coarse = check_labels(coarse, coarse.shape)
    else:
        labels = check_labels(segmentation, syn.shape)

    extent = block_extent_nm(syn.shape, voxel)
    trace = min(min_trace, _MAX_TRACE_SHARE * float(extent.min()))
    if trace < min_trace:
        flags.append("trace_shortened")
    volume_um3 = float(np.prod(extent)) / 1e9

    # 1. Synapses.
    blobs, n_blobs = label_mask(syn >= threshold, structure=_FULL)
    voxel_nm3 = float(np.prod(voxel))
    sizes = np.bincount(blobs.ravel(), minlength=n_blobs + 1)[1:] * voxel_nm3
    keep = np.flatnonzero(sizes >= min_volume) + 1
    n_syn = len(keep)
    density = n_syn / volume_um3
    if reference * volume_um3 >= MIN_EXPECTED_SYNAPSES:
        visibility = min(1.0, density / reference)
    else:
        visibility = math.nan
        flags.append("visibility_unmeasured")

    # 4. Spans of all segments (continuity), looked up for the partners.
    ids, volumes, spans = (
        segment_spans(labels, voxel) if cells is None else segment_spans(coarse, voxel, cells=cells)
    )
    if len(ids) == 0:
        return SynapseTraceability(
            score=math.nan,
            valid=False,
            flags=(*flags, "no_segments"),
            n_synapses=n_syn,
            synapses_per_um3=density,
            visibility=visibility,
            reference_synapses_per_um3=reference,
            trace_nm=trace,
        )
    continuity = float(np.sum(volumes * np.minimum(1.0, spans / trace)) / np.sum(volumes))
    span_of = dict(zip(ids.tolist(), spans.tolist(), strict=True))

    def labels_in(box: tuple[slice, ...]) -> np.ndarray:
        """The segment label of each voxel of ``box`` (coarse cells repeated onto it)."""
        if cells is None:
            return labels[box]
        return coarse[np.ix_(*(c[b] for c, b in zip(cells, box, strict=True)))]

    # 3. and 5. Partners of each synapse.
    counts = {"traced": 0, "merged": 0, "missing": 0, "short": 0}
    credit = 0.0
    slices = ndi.find_objects(blobs)
    for label in keep:
        pre, post = _partners(blobs, labels_in, label, slices[label - 1], voxel, reach, min_share)
        if pre == 0 or post == 0:
            counts["missing"] += 1
        elif pre == post:
            counts["merged"] += 1
        elif (shorter := min(span_of[pre], span_of[post])) < trace:
            counts["short"] += 1
            credit += shorter / trace
        else:
            counts["traced"] += 1
            credit += 1.0

    measured = math.isfinite(visibility)
    if n_syn == 0:
        flags.append("no_synapses")
        traced, score = math.nan, 0.0 if measured else math.nan
    else:
        traced = credit / n_syn
        score = math.sqrt(continuity * traced * (visibility if measured else 1.0))
    return SynapseTraceability(
        score=float(np.clip(score, 0, 1)) if math.isfinite(score) else math.nan,
        valid=math.isfinite(score),
        flags=tuple(flags),
        n_synapses=n_syn,
        synapses_per_um3=density,
        visibility=visibility,
        reference_synapses_per_um3=reference,
        traced_fraction=traced,
        n_traced=counts["traced"],
        n_merged=counts["merged"],
        n_partner_missing=counts["missing"],
        n_short=counts["short"],
        neurite_continuity=continuity,
        trace_nm=trace,
        n_segments=len(ids),
    )


def _segment_on_grid(
    boundary: np.ndarray, voxel: tuple[float, float, float], grid_nm: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`emqc.segmentation.segment` of ``boundary`` max-pooled to about ``grid_nm``.

    Returns the coarse labels and, per axis, the coarse cell of each voxel of
    ``boundary`` (the voxels' labels are ``coarse[np.ix_(*cells)]``).
    """
    from ..segmentation import segment  # here: segmentation may build on metrics

    factors = [max(1, int(grid_nm / v + 1e-9)) for v in voxel]
    cells = [np.arange(n) // f for n, f in zip(boundary.shape, factors, strict=True)]
    if factors == [1, 1, 1]:
        return segment(boundary, voxel_size_nm=voxel), cells
    # Partial cells at the far faces are padded with 0, which never raises a maximum.
    pooled = max_pool(boundary, factors)
    coarse = segment(
        pooled, voxel_size_nm=tuple(v * f for v, f in zip(voxel, factors, strict=True))
    )
    return coarse, cells


def _partners(
    blobs: np.ndarray,
    labels_in: Callable[[tuple[slice, ...]], np.ndarray],
    label: int,
    box: tuple[slice, ...],
    voxel: tuple[float, ...],
    reach: float,
    min_share: float,
) -> tuple[int, int]:
    """The two segments with most voxels within ``reach`` nm of synapse ``label`` (0: none).

    The second must hold at least ``min_share`` of those voxels; a smaller one is a
    bystander touching the rim, so the first is returned twice (merged partners).
    """
    pad = [math.ceil(reach / v) + 1 for v in voxel]
    box = tuple(
        slice(max(0, s.start - p), min(n, s.stop + p))
        for s, p, n in zip(box, pad, blobs.shape, strict=True)
    )
    own = blobs[box] == label
    near = within(own, reach, voxel)
    segs = labels_in(box)[near]
    segs = segs[segs > 0]
    if segs.size == 0:
        return 0, 0
    values, counts = np.unique(segs, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    first = int(values[order[0]])
    if len(order) < 2 or counts[order[1]] < min_share * segs.size:
        return first, first
    return first, int(values[order[1]])
