"""Training targets from the real datasets' labels.

- **boundary** (medulla, 3D): the medulla cube labels every voxel with a neuron
  id and has no membrane class, so the membrane is where ids change: a voxel is
  boundary when a voxel of another id lies within ``width_nm / 2`` along any
  axis. At 10 nm with the default 20 nm this marks the two voxels that face each
  other across a contact, which matches the dark line in the image (mean grey
  99 at boundaries vs 134 inside cells).
- **membrane**, **synapse**, **extracellular** (VNC, 2D sections): the VNC
  stack's own masks; extracellular space is its glia/extracellular class (159).
- ISBI 2012 gives membranes only.

Heads without a label in a dataset get a zero loss weight (see ``_train``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["boundary_from_ids", "dataset_targets", "VNC_EXTRACELLULAR_CLASS"]

VNC_EXTRACELLULAR_CLASS = 159


def boundary_from_ids(
    ids: np.ndarray, *, voxel_size_nm: tuple[float, float, float], width_nm: float = 20.0
) -> np.ndarray:
    """Boundary mask of a dense label volume.

    Parameters
    ----------
    ids : (Z, Y, X) ndarray of int
        Dense object ids.
    voxel_size_nm : (3,) tuple of float
    width_nm : float
        Total boundary width; at least one voxel on each side of a change.

    Returns
    -------
    (Z, Y, X) ndarray of bool
    """
    out = np.zeros(ids.shape, dtype=bool)
    for axis, vox in enumerate(voxel_size_nm):
        if ids.shape[axis] < 2:
            continue
        change = np.diff(ids, axis=axis) != 0
        lo = [slice(None)] * ids.ndim
        hi = [slice(None)] * ids.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        side = np.zeros(ids.shape, dtype=bool)
        side[tuple(lo)] |= change
        side[tuple(hi)] |= change
        reach = max(0, round(width_nm / 2 / vox) - 1)
        if reach:
            struct = np.zeros((2 * reach + 1,) * ids.ndim, dtype=bool)
            centre = [reach] * ids.ndim
            for k in range(2 * reach + 1):
                centre[axis] = k
                struct[tuple(centre)] = True
            side = ndimage.binary_dilation(side, structure=struct)
        out |= side
    return out


def dataset_targets(
    name: str, labels: dict[str, np.ndarray], voxel_size_nm
) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Targets (bool volumes) available for each head in dataset ``name``."""
    if name == "medulla":
        return {"boundary": boundary_from_ids(labels["neuron_ids"], voxel_size_nm=voxel_size_nm)}
    if name == "vnc":
        return {
            "membrane": labels["membranes"] > 0,
            "synapse": labels["synapses"] > 0,
            "extracellular": labels["classes"] == VNC_EXTRACELLULAR_CLASS,
        }
    if name == "isbi":
        return {"membrane": labels["membranes"] > 0}
    raise ValueError(f"no targets for dataset {name!r}")
