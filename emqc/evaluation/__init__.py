"""Accuracy of boundary maps, segmentations and synapse detections against ground truth.

Pure numpy / scipy / scikit-image functions used by ``benchmarks/accuracy.py``:

- boundaries: :func:`boundaries_from_labels`, :func:`boundary_prf` (precision,
  recall, F1 with a distance tolerance in nm; tolerance 0 = pixel F1),
  :func:`boundary_pr_curve`, :func:`average_precision`;
- segmentations: :func:`voi` (variation of information, split and merge);
- synapses: :func:`smooth_probability`, :func:`detect_objects`,
  :func:`drop_small_objects`, :func:`match_objects`, :func:`synapse_prf`.

Examples
--------
>>> import numpy as np
>>> from emqc.evaluation import boundaries_from_labels, boundary_prf, voi
>>> ids = np.repeat(np.arange(1, 5), 8)[None, None, :].repeat(8, axis=1)
>>> true = boundaries_from_labels(ids)
>>> boundary_prf(true, true, voxel_size_nm=(10, 10, 10), tolerance_nm=20).f1
1.0
>>> voi(ids, ids).total
0.0
"""

from ._boundary import (
    BoundaryScore,
    PRCurve,
    average_precision,
    boundaries_from_labels,
    boundary_pr_curve,
    boundary_prf,
)
from ._synapses import (
    SynapseScore,
    detect_objects,
    drop_small_objects,
    match_objects,
    smooth_probability,
    synapse_prf,
)
from ._voi import VOIScore, voi

__all__ = [
    "BoundaryScore",
    "PRCurve",
    "SynapseScore",
    "VOIScore",
    "average_precision",
    "boundaries_from_labels",
    "boundary_pr_curve",
    "boundary_prf",
    "detect_objects",
    "drop_small_objects",
    "match_objects",
    "smooth_probability",
    "synapse_prf",
    "voi",
]
