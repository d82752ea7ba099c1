"""Variation of information between a segmentation and the ground truth, split and merge.

VOI(S, G) = H(S | G) + H(G | S) (Meilă 2007), in bits. H(S | G), the *split* part,
is the information needed to tell, within one true object, which segment a voxel
is in: zero for a perfect under-segmentation, large for over-segmentation.
H(G | S), the *merge* part, is the converse. Connectomics reports both (e.g. the
CREMI challenge, Nunez-Iglesias et al. 2013) since a split is cheap to proofread
and a merge is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from skimage.metrics import variation_of_information

__all__ = ["VOIScore", "voi"]

_EPS = 1e-12  # bits


@dataclass(frozen=True)
class VOIScore:
    """Variation of information, in bits.

    Attributes
    ----------
    split : float
        H(segmentation | ground truth): over-segmentation (false splits).
    merge : float
        H(ground truth | segmentation): under-segmentation (false merges).
    """

    split: float
    merge: float

    @property
    def total(self) -> float:
        """split + merge, the variation of information itself."""
        return self.split + self.merge

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def voi(
    segmentation: np.ndarray,
    truth: np.ndarray,
    *,
    ignore_truth: Sequence[int] = (0,),
) -> VOIScore:
    """Split and merge parts of the variation of information of a segmentation.

    Voxels whose true label is in ``ignore_truth`` (by default 0: unlabelled or
    boundary in the ground truth) are left out; a predicted label 0 is counted as
    one segment like any other, so a method that leaves voxels unassigned is charged
    for merging them.

    Parameters
    ----------
    segmentation : ndarray of int
        Predicted segment ids, any shape.
    truth : ndarray of int
        True object ids, same shape.
    ignore_truth : sequence of int
        True labels whose voxels are not scored.

    Returns
    -------
    VOIScore
        Both parts are >= 0, and 0 for a segmentation equal to the truth up to a
        renaming of the ids.

    References
    ----------
    .. [1] M. Meilă (2007), Comparing clusterings: an information based distance,
       J. Multivariate Analysis 98(5):873-895, doi:10.1016/j.jmva.2006.11.013.
    .. [2] J. Nunez-Iglesias et al. (2013), Machine learning of hierarchical
       clustering to segment 2D and 3D images, PLoS ONE 8(8):e71715 (split and merge VI).

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([1, 1, 2, 2])
    >>> voi(np.array([5, 5, 7, 7]), truth).total
    0.0
    >>> voi(np.array([1, 2, 3, 4]), truth).to_dict()
    {'split': 1.0, 'merge': 0.0, 'total': 1.0}
    """
    for name, arr in (("segmentation", segmentation), ("truth", truth)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer label array, got dtype {arr.dtype}")
    if segmentation.shape != truth.shape:
        raise ValueError(
            f"segmentation has shape {segmentation.shape}, truth {truth.shape}: they must match"
        )
    if isinstance(ignore_truth, str | bytes) or not isinstance(ignore_truth, Sequence):
        raise TypeError(f"ignore_truth must be a sequence of labels, got {ignore_truth!r}")
    if not np.isin(truth, ignore_truth, invert=True).any():
        raise ValueError("truth has no voxel outside ignore_truth: nothing to score")
    # skimage returns (H(image1 | image0), H(image0 | image1)) = (false splits, false merges).
    split, merge = variation_of_information(truth, segmentation, ignore_labels=ignore_truth)
    # Rounding leaves ~1e-18 bits for identical partitions: report that as 0.
    return VOIScore(*(float(v) if v > _EPS else 0.0 for v in (split, merge)))
