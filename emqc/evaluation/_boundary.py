"""Boundary accuracy: precision, recall and F1 with a distance tolerance, and the PR curve.

A predicted boundary voxel is correct when a ground-truth boundary voxel lies
within ``tolerance_nm`` of it (distances in nanometres, so anisotropic voxels are
handled; with a tolerance below the section thickness only voxels of the same
section can match), and a ground-truth boundary voxel is found when a predicted one
lies within ``tolerance_nm``. This is the boundary F-measure of the Berkeley
segmentation benchmark (Martin et al. 2004) with the one-to-one correspondence
relaxed to "any voxel within the tolerance", as in the DAVIS contour accuracy
(Perazzi et al. 2016). With ``tolerance_nm = 0`` it is the pixel-wise F1 of the
membrane class, the ISBI 2012 "pixel error" being 1 - its maximum over thresholds
(Arganda-Carreras et al. 2015).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .._validate import check_number, check_voxel_size

__all__ = [
    "BoundaryScore",
    "PRCurve",
    "average_precision",
    "boundaries_from_labels",
    "boundary_pr_curve",
    "boundary_prf",
]


def _voxel_size(voxel_size_nm: Any) -> tuple[float, float, float]:
    return check_voxel_size(voxel_size_nm)


def _tolerance(tolerance_nm: Any) -> float:
    return check_number("tolerance_nm", tolerance_nm, lo=0.0)


def _array(name: str, array: Any, *, kind: str, shape: tuple[int, ...] | None = None):
    """Check a (Z, Y, X) array: ``kind`` "bool", "prob" or "labels"."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 3:
        raise ValueError(f"{name} must be a (Z, Y, X) array, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    if kind == "bool" and array.dtype != bool:
        raise TypeError(f"{name} must be a bool mask, got dtype {array.dtype}")
    if kind == "labels" and array.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer label array, got dtype {array.dtype}")
    if kind == "prob":
        if array.dtype.kind != "f":
            raise TypeError(f"{name} must be a float probability map, got dtype {array.dtype}")
        if array.size and (not np.isfinite(array).all() or array.min() < 0 or array.max() > 1):
            raise ValueError(f"{name} must hold finite values in [0, 1]")
    return array


def tolerance_footprint(voxel_size_nm: tuple[float, float, float], tolerance_nm: float):
    """Offsets within ``tolerance_nm`` of the centre (an ellipsoid in voxels), as a bool array."""
    radius = [int(tolerance_nm // v) for v in voxel_size_nm]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    d2 = sum((g * v) ** 2 for g, v in zip(grids, voxel_size_nm, strict=True))
    return d2 <= tolerance_nm**2 * (1 + 1e-9)


def boundaries_from_labels(labels: np.ndarray, *, planar: bool = False) -> np.ndarray:
    """Ground-truth boundary of a dense label volume: voxels with a 6-neighbour of another id.

    Both voxels facing each other across a change of id are marked (a line two
    voxels wide); label 0 counts as an id like any other (the medulla cube's few
    unlabelled voxels are thus bounded too).

    Parameters
    ----------
    labels : (Z, Y, X) ndarray of int
        Dense object ids.
    planar : bool
        Look only within each z section (serial-section data, where neighbouring
        sections are 50 nm apart and objects shift between them).

    Returns
    -------
    (Z, Y, X) ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> ids = np.repeat([1, 1, 2, 2], 1)[None, None, :]
    >>> boundaries_from_labels(ids)[0, 0].tolist()
    [False, True, True, False]
    """
    labels = _array("labels", labels, kind="labels")
    out = np.zeros(labels.shape, bool)
    for axis in (1, 2) if planar else (0, 1, 2):
        if labels.shape[axis] < 2:
            continue
        change = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        out[tuple(lo)] |= change
        out[tuple(hi)] |= change
    return out


@dataclass(frozen=True)
class BoundaryScore:
    """Precision, recall and F1 of a predicted boundary mask.

    Attributes
    ----------
    precision, recall, f1 : float
        In [0, 1]. Precision is 1 when nothing is predicted, recall 1 when there is
        no ground-truth boundary (nothing to miss); F1 is their harmonic mean (0 when
        both are 0).
    n_pred, n_true : int
        Predicted and ground-truth boundary voxels counted.
    tolerance_nm : float
    """

    precision: float
    recall: float
    f1: float
    n_pred: int
    n_true: int
    tolerance_nm: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1(p: np.ndarray | float, r: np.ndarray | float):
    p, r = np.asarray(p, float), np.asarray(r, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def _near(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    if footprint.size == 1:
        return mask
    return ndi.binary_dilation(mask, structure=footprint)


def boundary_prf(
    pred: np.ndarray,
    true: np.ndarray,
    *,
    voxel_size_nm: Any,
    tolerance_nm: float,
    mask: np.ndarray | None = None,
) -> BoundaryScore:
    """Precision, recall and F1 of a boundary mask against the true boundary, with a tolerance.

    Parameters
    ----------
    pred, true : (Z, Y, X) ndarray of bool
        Predicted and ground-truth boundary voxels.
    voxel_size_nm : (float, float, float)
    tolerance_nm : float
        Largest distance (nm) at which a predicted and a true voxel match; 0 gives
        the pixel-wise scores.
    mask : (Z, Y, X) ndarray of bool, optional
        Voxels to count (both masks are restricted to it first).

    Returns
    -------
    BoundaryScore

    References
    ----------
    .. [1] D. R. Martin, C. C. Fowlkes and J. Malik (2004), Learning to detect natural
       image boundaries using local brightness, color, and texture cues, IEEE TPAMI
       26(5):530-549 (the BSDS boundary benchmark).
    .. [2] F. Perazzi et al. (2016), A benchmark dataset and evaluation methodology for
       video object segmentation, CVPR (contour accuracy with a distance tolerance).
    .. [3] I. Arganda-Carreras et al. (2015), Crowdsourcing the creation of image
       segmentation algorithms for connectomics, Front. Neuroanat. 9:142.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((1, 1, 10), bool); true[..., 5] = True
    >>> pred = np.zeros_like(true); pred[..., 6] = True
    >>> boundary_prf(pred, true, voxel_size_nm=(10, 10, 10), tolerance_nm=0).f1
    0.0
    >>> boundary_prf(pred, true, voxel_size_nm=(10, 10, 10), tolerance_nm=10).f1
    1.0
    """
    true = _array("true", true, kind="bool")
    pred = _array("pred", pred, kind="bool", shape=true.shape)
    footprint = tolerance_footprint(_voxel_size(voxel_size_nm), _tolerance(tolerance_nm))
    if mask is not None:
        mask = _array("mask", mask, kind="bool", shape=true.shape)
        pred, true = pred & mask, true & mask
    n_pred, n_true = int(pred.sum()), int(true.sum())
    precision = float(np.count_nonzero(_near(true, footprint) & pred)) / n_pred if n_pred else 1.0
    recall = float(np.count_nonzero(_near(pred, footprint) & true)) / n_true if n_true else 1.0
    f1 = float(_f1(precision, recall))
    return BoundaryScore(precision, recall, f1, n_pred, n_true, float(tolerance_nm))


@dataclass(frozen=True)
class PRCurve:
    """A precision-recall curve over thresholds of a probability map.

    Attributes
    ----------
    thresholds : (T,) ndarray of float
        Increasing; a voxel is predicted boundary when its probability is ``> t``.
    precision, recall, f1 : (T,) ndarray of float
    tolerance_nm : float
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    tolerance_nm: float

    @property
    def average_precision(self) -> float:
        """Σ (Rₙ − Rₙ₊₁) Pₙ over thresholds (recall steps times precision, no interpolation)."""
        steps = self.recall - np.append(self.recall[1:], 0.0)
        return float(np.sum(steps * self.precision))

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.f1))

    @property
    def best_threshold(self) -> float:
        """Threshold of the highest F1 (the BSDS "optimal dataset scale")."""
        return float(self.thresholds[self.best_index])

    @property
    def best_f1(self) -> float:
        return float(self.f1[self.best_index])

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "f1": self.f1.tolist(),
            "tolerance_nm": self.tolerance_nm,
            "average_precision": self.average_precision,
            "best_threshold": self.best_threshold,
            "best_f1": self.best_f1,
        }


def _counts_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, how many ``values`` exceed it (one pass, by binning)."""
    idx = np.searchsorted(thresholds, values, side="left")  # thresholds strictly below v
    counts = np.bincount(idx, minlength=thresholds.size + 1)
    return np.cumsum(counts[::-1])[::-1][1:]


def boundary_pr_curve(
    prob: np.ndarray,
    true: np.ndarray,
    *,
    voxel_size_nm: Any,
    tolerance_nm: float,
    thresholds: int | np.ndarray = 99,
    mask: np.ndarray | None = None,
) -> PRCurve:
    """Boundary precision and recall (with a tolerance) at every threshold of a probability map.

    The same scores as :func:`boundary_prf` of ``prob > t`` for each ``t``, in one
    pass: a voxel's "near a true boundary" does not depend on ``t``, and a true
    voxel is found at ``t`` exactly when the maximum of ``prob`` within the tolerance
    around it exceeds ``t`` (a grey dilation computed once).

    Parameters
    ----------
    prob : (Z, Y, X) ndarray of float
        Boundary probability in [0, 1].
    true : (Z, Y, X) ndarray of bool
    voxel_size_nm : (float, float, float)
    tolerance_nm : float
    thresholds : int or (T,) array of float
        Number of thresholds evenly spaced in (0, 1), or the thresholds themselves.
    mask : (Z, Y, X) ndarray of bool, optional

    Returns
    -------
    PRCurve

    References
    ----------
    .. [1] D. R. Martin, C. C. Fowlkes and J. Malik (2004), Learning to detect natural
       image boundaries using local brightness, color, and texture cues, IEEE TPAMI
       26(5):530-549 (the BSDS boundary benchmark).
    .. [2] F. Perazzi et al. (2016), A benchmark dataset and evaluation methodology for
       video object segmentation, CVPR (contour accuracy with a distance tolerance).
    .. [3] I. Arganda-Carreras et al. (2015), Crowdsourcing the creation of image
       segmentation algorithms for connectomics, Front. Neuroanat. 9:142.
    """
    true = _array("true", true, kind="bool")
    prob = _array("prob", prob, kind="prob", shape=true.shape)
    footprint = tolerance_footprint(_voxel_size(voxel_size_nm), _tolerance(tolerance_nm))
    if isinstance(thresholds, numbers.Integral) and not isinstance(thresholds, bool):
        if thresholds < 1:
            raise ValueError(f"thresholds must be >= 1, got {thresholds!r}")
        thresholds = np.linspace(0, 1, int(thresholds) + 2)[1:-1]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or np.any(np.diff(thresholds) <= 0):
        raise ValueError("thresholds must be a positive int or a 1-D increasing array")
    if mask is not None:
        mask = _array("mask", mask, kind="bool", shape=true.shape)
        prob, true = np.where(mask, prob, 0).astype(prob.dtype), true & mask

    # Precision: of the voxels above t, those near a true boundary.
    near_true = _near(true, footprint)
    n_pred = _counts_above(prob.ravel(), thresholds)
    n_hit = _counts_above(prob[near_true], thresholds)
    # Recall: true voxels whose neighbourhood holds a voxel above t.
    reach = prob if footprint.size == 1 else ndi.maximum_filter(prob, footprint=footprint)
    n_true = int(true.sum())
    n_found = _counts_above(reach[true], thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, n_hit / np.maximum(n_pred, 1), 1.0)
    recall = n_found / n_true if n_true else np.ones(thresholds.size)
    return PRCurve(thresholds, precision, recall, _f1(precision, recall), float(tolerance_nm))


def average_precision(
    prob: np.ndarray,
    true: np.ndarray,
    *,
    voxel_size_nm: Any,
    tolerance_nm: float,
    thresholds: int | np.ndarray = 99,
    mask: np.ndarray | None = None,
) -> float:
    """Average precision of a boundary probability map (see :func:`boundary_pr_curve`).

    ``AP = Σₙ (Rₙ − Rₙ₊₁) Pₙ`` over the thresholds in increasing order, with
    ``R`` = 0 beyond the last: the area under the step-wise PR curve, without
    interpolation (the definition scikit-learn uses).

    Returns
    -------
    float
        In [0, 1].

    References
    ----------
    .. [1] C. D. Manning, P. Raghavan and H. Schütze (2008), Introduction to
       Information Retrieval, Cambridge University Press, ch. 8.4 (average precision).
    .. [2] D. R. Martin, C. C. Fowlkes and J. Malik (2004), IEEE TPAMI 26(5):530-549
       (boundary precision and recall with a tolerance).

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((4, 16, 16), bool); true[:, 8] = True
    >>> average_precision(true.astype(np.float32), true, voxel_size_nm=(10, 10, 10),
    ...                   tolerance_nm=0)
    1.0
    """
    curve = boundary_pr_curve(
        prob,
        true,
        voxel_size_nm=voxel_size_nm,
        tolerance_nm=tolerance_nm,
        thresholds=thresholds,
        mask=mask,
    )
    return curve.average_precision
