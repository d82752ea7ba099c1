"""The classical baseline the networks are compared with (no learning, no torch).

- boundaries: a multi-scale Hessian ridge (sheet) filter for dark membranes,
  :func:`ridge_boundary`;
- segmentation: that map, thresholded and flooded by :func:`emqc.segmentation.segment`,
  :func:`baseline_segmentation`;
- synapses: darkness of structures thicker than a membrane, :func:`dark_blob_synapses`.

:func:`predict` is the baseline as a *method* of ``benchmarks/accuracy.py``: raw block
in, maps out. Its filter scales are physical (nm), the same for every dataset; they
were chosen on the training parts of the three real volumes (see BENCHMARKS.md), and
the thresholds that turn its maps into masks, segments and objects are tuned by the
benchmark on the training parts only.

Examples
--------
>>> from emqc.baseline import predict
>>> from emqc.synth import synthetic_neuropil
>>> vol = synthetic_neuropil((8, 48, 48), voxel_size_nm=(10.0, 10.0, 10.0), seed=1)
>>> maps = predict(vol.image, vol.voxel_size_nm)
>>> sorted(maps), maps["boundary"].shape, str(maps["boundary"].dtype)
(['boundary', 'synapse'], (8, 48, 48), 'float32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..segmentation import segment
from ._ridge import normalize_intensity, ridge_boundary
from ._synapse_blobs import dark_blob_synapses

__all__ = [
    "BOUNDARY_SCALES_NM",
    "baseline_segmentation",
    "dark_blob_synapses",
    "normalize_intensity",
    "predict",
    "ridge_boundary",
]

#: Ridge-filter scale: on the training parts, 15-25 nm were within 0.03 AP of the best
#: on every dataset (medulla 3D 0.898/0.895 at 15/20 nm; ISBI 0.727/0.740/0.704 and VNC
#: 0.665/0.712/0.718 at 15/20/25 nm, pixel AP).
BOUNDARY_SCALES_NM = (20.0,)


def predict(
    raw: np.ndarray, voxel_size_nm: Any, dataset_name: str | None = None
) -> dict[str, np.ndarray]:
    """Boundary and synapse maps of a raw EM block by the classical baseline.

    Parameters
    ----------
    raw : (Z, Y, X) ndarray
    voxel_size_nm : (float, float, float)
    dataset_name : str, optional
        Accepted for the benchmark's method signature and ignored: the baseline uses
        only physical sizes.

    Returns
    -------
    dict
        ``"boundary"`` (:func:`ridge_boundary`) and ``"synapse"``
        (:func:`dark_blob_synapses`), (Z, Y, X) float32 maps in [0, 1].
    """
    return {
        "boundary": ridge_boundary(raw, voxel_size_nm=voxel_size_nm, scales_nm=BOUNDARY_SCALES_NM),
        "synapse": dark_blob_synapses(raw, voxel_size_nm=voxel_size_nm),
    }


def baseline_segmentation(
    raw: np.ndarray, *, voxel_size_nm: Any, threshold: float = 0.35, merge_threshold: float = 0.3
) -> np.ndarray:
    """Segment a raw EM block: :func:`ridge_boundary`, then :func:`emqc.segmentation.segment`.

    Parameters
    ----------
    raw : (Z, Y, X) ndarray
    voxel_size_nm : (float, float, float)
    threshold, merge_threshold : float
        Seed and merge thresholds of :func:`~emqc.segmentation.segment` on the ridge
        map; the defaults are those ``benchmarks/accuracy.py`` chose on the medulla
        cube's training part (least VOI).

    Returns
    -------
    (Z, Y, X) ndarray of uint32
    """
    boundary = ridge_boundary(raw, voxel_size_nm=voxel_size_nm, scales_nm=BOUNDARY_SCALES_NM)
    return segment(
        boundary, voxel_size_nm=voxel_size_nm, threshold=threshold, merge_threshold=merge_threshold
    )
