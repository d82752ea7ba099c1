"""Synapse detection accuracy: objects from a probability map, matched one-to-one to the truth.

Objects
    Predicted synapses are the connected components (6-connected) of
    ``probability > threshold`` with a volume of at least ``min_size_nm3``, the map
    optionally smoothed first by a Gaussian of ``smooth_nm`` (so that one synapse whose
    probability dips inside it, where its cleft narrows or a section is faint, stays
    one object instead of several fragments); true synapses are the connected
    components of the ground-truth mask (or its labels).
Matching rule
    A predicted and a true synapse *may* match when they share at least one voxel or
    their centroids lie within ``max_distance_nm`` (nanometres, so anisotropic voxels
    are handled). Among those candidate pairs a one-to-one assignment is chosen that
    first has as many pairs as possible and then the smallest sum of centroid
    distances (the Hungarian algorithm, Kuhn 1955). Matched pairs are true
    positives; unmatched predictions are false positives, unmatched true synapses
    false negatives. Object-level detection scores of this kind are used by the
    CREMI and SNEMI synapse challenges (Kreshuk et al. 2014 for this data type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from .._components import face_neighbours, label
from .._validate import check_number
from ._boundary import _array, _voxel_size

__all__ = [
    "SynapseScore",
    "detect_objects",
    "drop_small_objects",
    "match_objects",
    "smooth_probability",
    "synapse_prf",
]


def _non_negative(name: str, value: Any) -> float:
    return check_number(name, value, lo=0.0)


def smooth_probability(
    prob: np.ndarray, *, sigma_nm: float, voxel_size_nm: Any, planar: bool = False
) -> np.ndarray:
    """A probability map smoothed by a Gaussian whose standard deviation is given in nm.

    Parameters
    ----------
    prob : (Z, Y, X) ndarray of float
        Synapse probability in [0, 1].
    sigma_nm : float
        Standard deviation in nanometres along every axis (converted to voxels per
        axis, so anisotropic voxels are handled); 0 returns ``prob`` as float32.
    voxel_size_nm : (float, float, float)
    planar : bool
        Smooth within each z section only (for per-section profiles).

    Returns
    -------
    (Z, Y, X) ndarray of float32
        Still in [0, 1] (a weighted mean of ``prob``).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((1, 9, 9), np.float32); p[0, 4, 4] = 1
    >>> q = smooth_probability(p, sigma_nm=10, voxel_size_nm=(10, 10, 10))
    >>> bool(q[0, 4, 4] < 1 and abs(q.sum() - 1) < 1e-3)
    True
    """
    prob = _array("prob", prob, kind="prob")
    sigma = _non_negative("sigma_nm", sigma_nm)
    vox = _voxel_size(voxel_size_nm)
    if not isinstance(planar, bool):
        raise TypeError(f"planar must be True or False, got {planar!r}")
    out = np.asarray(prob, dtype=np.float32)
    if sigma == 0:
        return out
    sigmas = [0.0 if (planar and axis == 0) else sigma / v for axis, v in enumerate(vox)]
    smoothed = ndi.gaussian_filter(out, sigmas, mode="nearest")
    return np.clip(smoothed, 0.0, 1.0, out=smoothed)  # float32 rounding can pass 1 by an ulp


def drop_small_objects(
    labels: np.ndarray, *, min_size_nm3: float, voxel_size_nm: Any
) -> np.ndarray:
    """Labelled objects with a volume of at least ``min_size_nm3``, renumbered ``1..n``.

    Parameters
    ----------
    labels : (Z, Y, X) ndarray of int
        Object ids, 0 for background.
    min_size_nm3 : float
        Smallest volume kept (nm³); 0 keeps every object.
    voxel_size_nm : (float, float, float)

    Returns
    -------
    (Z, Y, X) ndarray of uint32

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.array([[[1, 1, 0, 2]]])
    >>> drop_small_objects(lab, min_size_nm3=2000, voxel_size_nm=(10, 10, 10)).tolist()
    [[[1, 1, 0, 0]]]
    """
    labels = _array("labels", labels, kind="labels")
    min_size = _non_negative("min_size_nm3", min_size_nm3)
    vox = _voxel_size(voxel_size_nm)
    n = int(labels.max(initial=0))
    if n == 0 or min_size == 0:
        return labels.astype(np.uint32)
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * float(np.prod(vox))
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(n + 1, np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[labels]


def detect_objects(
    prob: np.ndarray,
    *,
    threshold: float,
    voxel_size_nm: Any,
    min_size_nm3: float = 0.0,
    planar: bool = False,
    smooth_nm: float = 0.0,
) -> np.ndarray:
    """Objects of a probability map: 6-connected components of ``prob > threshold``.

    Parameters
    ----------
    prob : (Z, Y, X) ndarray of float
        Synapse probability in [0, 1].
    threshold : float
        In [0, 1).
    voxel_size_nm : (float, float, float)
    min_size_nm3 : float
        Components smaller than this volume (nm³) are dropped.
    planar : bool
        Components within each z section only (4-connected): the synapse *profiles*
        of serial sections, rather than 3D objects.
    smooth_nm : float
        Smooth the map first (:func:`smooth_probability`, within sections when
        ``planar``); 0, the default, thresholds it as it is.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
        Object ids ``1..n``, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((1, 8, 8), np.float32); p[0, 1:3, 1:3] = 0.9; p[0, 6, 6] = 0.9
    >>> int(detect_objects(p, threshold=0.5, voxel_size_nm=(10, 10, 10)).max())
    2
    >>> int(detect_objects(p, threshold=0.5, voxel_size_nm=(10, 10, 10),
    ...                    min_size_nm3=2000).max())
    1
    """
    # smooth_probability also checks prob, voxel_size_nm and planar (the map is scanned once)
    prob = smooth_probability(prob, sigma_nm=smooth_nm, voxel_size_nm=voxel_size_nm, planar=planar)
    t = _non_negative("threshold", threshold)
    if t >= 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    labels = label(prob > t, structure=face_neighbours(planar))[0]
    return drop_small_objects(labels, min_size_nm3=min_size_nm3, voxel_size_nm=voxel_size_nm)


@dataclass(frozen=True)
class SynapseScore:
    """Object-level detection scores.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched true synapses.
    precision, recall, f1 : float
        ``tp / (tp + fp)`` (1 when nothing is predicted), ``tp / (tp + fn)`` (1 when
        there is no true synapse), and their harmonic mean (0 when both are 0).
    pairs : tuple of (int, int)
        Matched (predicted id, true id).
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    pairs: tuple[tuple[int, int], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


class _Objects:
    """The labelled voxels of an object image, stored sparsely (objects are rare)."""

    def __init__(self, labels: np.ndarray, vox: tuple[float, float, float]) -> None:
        self.flat = np.flatnonzero(labels)
        values = labels.ravel()[self.flat]
        top = int(values.max(initial=0))
        if top <= max(2**20, 4 * values.size):  # small ids: a lookup table, no sort
            present = np.bincount(values, minlength=top + 1) > 0
            present[0] = False
            self.ids = np.flatnonzero(present)
            lut = np.cumsum(present) - 1
            self.index = lut[values]  # 0-based object index of each voxel in ``flat``
        else:
            self.ids, index = np.unique(values, return_inverse=True)
            self.index = index.ravel()
        n = self.ids.size
        count = np.bincount(self.index, minlength=n).astype(float)
        coords = np.unravel_index(self.flat, labels.shape)
        sums = [np.bincount(self.index, weights=c, minlength=n) for c in coords]
        self.centroids_nm = np.stack(sums, axis=1).reshape(n, 3) / np.maximum(count, 1)[:, None]
        self.centroids_nm *= np.asarray(vox)


def match_objects(
    pred: np.ndarray,
    true: np.ndarray,
    *,
    voxel_size_nm: Any,
    max_distance_nm: float = 150.0,
) -> SynapseScore:
    """Match predicted to true objects one-to-one (see the module's matching rule).

    Parameters
    ----------
    pred, true : (Z, Y, X) ndarray of int
        Object ids (0 = background).
    voxel_size_nm : (float, float, float)
    max_distance_nm : float
        Largest centroid distance at which non-overlapping objects may match.

    Returns
    -------
    SynapseScore

    References
    ----------
    .. [1] H. W. Kuhn (1955), The Hungarian method for the assignment problem, Naval
       Research Logistics Quarterly 2:83-97.
    .. [2] A. Kreshuk, U. Koethe, E. Pax, D. D. Bock and F. A. Hamprecht (2014),
       Automated detection of synapses in serial section transmission electron
       microscopy image stacks, PLoS ONE 9(2):e87351.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((1, 10, 30), np.uint8); true[0, 2:5, 2:5] = 1; true[0, 2:5, 20:23] = 2
    >>> pred = np.zeros_like(true); pred[0, 3:6, 3:6] = 1
    >>> s = match_objects(pred, true, voxel_size_nm=(10, 10, 10))
    >>> (s.tp, s.fp, s.fn, s.precision, s.recall)
    (1, 0, 1, 1.0, 0.5)
    """
    true = _array("true", true, kind="labels")
    pred = _array("pred", pred, kind="labels", shape=true.shape)
    vox = _voxel_size(voxel_size_nm)
    max_d = _non_negative("max_distance_nm", max_distance_nm)
    p, t = _Objects(pred, vox), _Objects(true, vox)
    n_p, n_t = p.ids.size, t.ids.size
    pairs: list[tuple[int, int]] = []
    if n_p and n_t:
        # Candidates: overlapping pairs, or centroids within max_d.
        overlap = np.zeros((n_p, n_t), bool)
        _, in_p, in_t = np.intersect1d(p.flat, t.flat, assume_unique=True, return_indices=True)
        overlap[p.index[in_p], t.index[in_t]] = True
        dist = np.linalg.norm(p.centroids_nm[:, None, :] - t.centroids_nm[None, :, :], axis=-1)
        candidate = overlap | (dist <= max_d)
        # Most pairs first, then least total distance: a non-candidate costs more than
        # all candidate distances together.
        big = float(dist[candidate].sum()) + 1.0
        rows, cols = linear_sum_assignment(np.where(candidate, dist, big))
        ok = candidate[rows, cols]
        pairs = [(int(p.ids[r]), int(t.ids[c])) for r, c in zip(rows[ok], cols[ok], strict=True)]
    tp = len(pairs)
    fp, fn = n_p - tp, n_t - tp
    precision = tp / n_p if n_p else 1.0
    recall = tp / n_t if n_t else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SynapseScore(tp, fp, fn, precision, recall, f1, tuple(pairs))


def synapse_prf(
    prob: np.ndarray,
    true: np.ndarray,
    *,
    threshold: float,
    voxel_size_nm: Any,
    min_size_nm3: float = 0.0,
    max_distance_nm: float = 150.0,
    planar: bool = False,
    smooth_nm: float = 0.0,
) -> SynapseScore:
    """Synapse detection precision, recall and F1 of a probability map.

    :func:`detect_objects` on ``prob``, connected components of ``true``, then
    :func:`match_objects`.

    Parameters
    ----------
    prob : (Z, Y, X) ndarray of float
        Synapse probability in [0, 1].
    true : (Z, Y, X) ndarray of bool or int
        Ground-truth synapse mask; its 6-connected components are the true synapses
        (give labels with :func:`match_objects` directly to keep touching ones apart).
    threshold, voxel_size_nm, min_size_nm3, planar, smooth_nm
        As in :func:`detect_objects` (``planar`` applies to the true synapses too).
    max_distance_nm : float
        As in :func:`match_objects`.

    Returns
    -------
    SynapseScore

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((3, 20, 20), bool); true[1, 5:8, 5:8] = True
    >>> synapse_prf(true.astype(np.float32), true, threshold=0.5,
    ...             voxel_size_nm=(50, 5, 5)).f1
    1.0
    """
    true = _array("true", true, kind="labels")
    pred = detect_objects(
        prob,
        threshold=threshold,
        voxel_size_nm=voxel_size_nm,
        min_size_nm3=min_size_nm3,
        planar=planar,
        smooth_nm=smooth_nm,
    )
    true_objects = label(true > 0, structure=face_neighbours(planar))[0]
    return match_objects(
        pred, true_objects, voxel_size_nm=voxel_size_nm, max_distance_nm=max_distance_nm
    )
