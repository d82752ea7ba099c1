"""Training data of the 3D FIB-SEM network: the real medulla cube, clean and damaged.

The medulla cube (10 nm, dense neuron ids) is the only isotropic volume with labels.
It gives the ``boundary`` target directly (where ids change). It has no
extracellular-space or synapse labels, so the other two heads are taught as follows:

- **extracellular**: the training part is damaged with the simulators of
  :mod:`emqc.damage` (edema, membrane breakdown, shrinkage) at several severities.
  Each simulator returns the labels after the edit and the true extracellular space
  it opened, so every damaged copy has exact targets: ``boundary`` from the damaged
  ids, minus the membrane that broke (a gap must not be bridged), and
  ``extracellular`` from the simulator. The clean cube has ``extracellular`` = 0
  (well-fixed neuropil; its ids cover 99.998 % of the voxels).
- **synapse**: distilled from the 2D network ``sections2d`` (trained on the VNC
  stack's real synapse labels), run section by section on the clean training part:
  its detections (probability >= 0.5, 3D objects of at least
  :data:`MIN_SYNAPSE_NM3`) are the target. This transfers ssTEM synapse labels to
  FIB-SEM; there is no FIB-SEM synapse ground truth in the data to measure it
  against (see ``MODEL_CARD.md``). Damaged copies carry no synapse target (the head
  is masked out of their loss).

Indistinct neuropil and the imaging artifacts are *not* used here: the validation
(``benchmarks/validation.py``) measures the scores on them as unseen conditions.

Everything is resampled to the network's working voxel size first (linear for the
image, nearest for ids), and damage is simulated at that voxel size.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from .. import datasets
from ..damage import Damaged, edema, membrane_breakdown, shrinkage
from ._targets import boundary_from_ids

__all__ = ["DAMAGE_SEVERITIES", "damaged_targets", "fibsem_training_volumes"]

log = logging.getLogger("emqc")

#: Smallest teacher detection kept as a synapse (nm³), as in :func:`emqc.metrics.synapse_traceability`.
MIN_SYNAPSE_NM3 = 1e5

#: Damaged copies of the training part: simulator and severities.
DAMAGE_SEVERITIES = {
    "edema": (0.25, 0.5, 0.75, 1.0),
    "membrane_breakdown": (0.3, 0.6, 0.9),
    "shrinkage": (0.5, 1.0),
}
_SIMULATORS = {"edema": edema, "membrane_breakdown": membrane_breakdown, "shrinkage": shrinkage}


def _resample(raw: np.ndarray, ids: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    if abs(factor - 1) < 1e-6:
        return raw, ids
    image = ndimage.zoom(raw.astype(np.float32), factor, order=1, grid_mode=True, mode="nearest")
    ids = ndimage.zoom(ids, factor, order=0, grid_mode=True, mode="nearest")
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), ids


def damaged_targets(
    damaged: Damaged, *, voxel_size_nm: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    """``boundary`` and ``extracellular`` targets of a damaged copy.

    The boundary is where the damaged ids change, on the cells' side only (cells shrunk
    away from an opened extracellular gap get their own membrane; the gap itself is
    extracellular, not membrane), minus the membrane that broke and one voxel around
    it: the network must not bridge a gap that is really there.
    """
    boundary = boundary_from_ids(damaged.labels, voxel_size_nm=voxel_size_nm)
    boundary &= ~damaged.extracellular
    if damaged.membrane_broken is not None:
        boundary &= ~ndimage.binary_dilation(damaged.membrane_broken)
    return {"boundary": boundary, "extracellular": damaged.extracellular.copy()}


def _teacher_synapse(raw: np.ndarray, voxel_size_nm: tuple[float, float, float]) -> np.ndarray:
    from ._infer import Predictor

    teacher = Predictor.load("sections2d", tile=256, halo=32, bf16=True)
    return teacher.predict(raw, voxel_size_nm=voxel_size_nm)["synapse"]


def _objects(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """``mask`` without its 26-connected components smaller than ``min_voxels``."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def fibsem_training_volumes(
    working_voxel_nm: float, *, seed: int = 0, damage: bool = True
) -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """(name, image in [0, 1], targets) of the clean and damaged medulla training part.

    Parameters
    ----------
    working_voxel_nm : float
        Isotropic voxel size the network works at.
    seed : int
        Seed of the damage simulators (each copy gets its own stream).
    damage : bool
        Add the damaged copies of :data:`DAMAGE_SEVERITIES`.

    Returns
    -------
    list of (str, (Z, Y, X) float32 ndarray, dict of str to (Z, Y, X) ndarray)
        Targets are bool.
    """
    vol = datasets.load("medulla")
    zs = datasets.split_z("medulla", "train")
    vox = vol.voxel_size_nm
    raw10, ids10 = vol.raw[zs], vol.labels["neuron_ids"][zs]
    factor = vox[0] / working_voxel_nm
    work = (working_voxel_nm,) * 3
    raw, ids = _resample(raw10, ids10, factor)
    synapse = _teacher_synapse(raw10, vox)
    if synapse.shape != raw.shape:
        synapse = ndimage.zoom(synapse, factor, order=1, grid_mode=True, mode="nearest")
        synapse = synapse[tuple(slice(0, n) for n in raw.shape)]
    clean_targets = {
        "boundary": boundary_from_ids(ids, voxel_size_nm=work),
        "extracellular": np.zeros(raw.shape, bool),
        "synapse": _objects(synapse >= 0.5, MIN_SYNAPSE_NM3 / working_voxel_nm**3),
    }
    out = [("medulla", raw.astype(np.float32) / 255.0, clean_targets)]
    if not damage:
        return out
    for k, (name, severities) in enumerate(DAMAGE_SEVERITIES.items()):
        for j, severity in enumerate(severities):
            d = _SIMULATORS[name](
                raw, labels=ids, voxel_size_nm=work, severity=severity, seed=seed + 100 * k + j
            )
            targets = damaged_targets(d, voxel_size_nm=work)
            out.append(
                (f"medulla+{name}@{severity:g}", d.image.astype(np.float32) / 255.0, targets)
            )
            log.info("training copy %s: extracellular %.3f", out[-1][0], d.extracellular.mean())
    return out
