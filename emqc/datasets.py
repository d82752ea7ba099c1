"""The real, labelled EM volumes emqc trains and validates on, and their fixed split.

The volumes live outside the repository, in ``$EMQC_DATA`` (default
``../shared/data`` beside the checkout); nothing from them is ever committed. Each
is one HDF5 file with ``/raw`` (uint8, z, y, x) and label datasets under
``/labels``; the voxel size is the ``resolution_nm_zyx`` attribute.

The split keeps a held-out part of **every** volume, cut along z so that no
held-out voxel is adjacent to a training voxel within a crop (a gap of
:data:`SPLIT_GAP` slices is left unused between the parts):

========  ===============================  ==============  =====================
name      volume                           train (z)       held out (z)
========  ===============================  ==============  =====================
medulla   FIB-SEM, 250³ at 10 nm           0 .. 159        167 .. 249 (last third)
vnc       ssTEM, 20×1024² at 50×4.6² nm    0 .. 13         15 .. 19
isbi      ssTEM, 30×512² at 50×4² nm       0 .. 21         24 .. 29
========  ===============================  ==============  =====================

References
----------
.. [1] Janelia FlyEM, neuroproof_examples ``training_sample2`` (medulla, CC-BY).
.. [2] S. Gerhard, J. Funke, J. Martel, A. Cardona, R. Fetter (2013), Segmented
   anisotropic ssTEM dataset of neural tissue, figshare doi:10.6084/m9.figshare.856713.
.. [3] I. Arganda-Carreras et al. (2015), Crowdsourcing the creation of image
   segmentation algorithms for connectomics, Front. Neuroanat. 9:142 (ISBI 2012).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import SourceNotFoundError

__all__ = ["DATASETS", "SPLIT_GAP", "RealVolume", "data_root", "load", "split_z"]

_REPO = Path(__file__).resolve().parents[1]

#: File of each dataset below :func:`data_root`.
DATASETS = {
    "medulla": "medulla-fib-10nm/medulla_fib_10nm_250cube.h5",
    "vnc": "vnc-sstem/vnc_sstem_stack1.h5",
    "isbi": "isbi2012/isbi2012_train.h5",
}

#: First held-out z slice of each dataset; training uses z < start - SPLIT_GAP.
_HELDOUT_START = {"medulla": 167, "vnc": 15, "isbi": 24}
SPLIT_GAP = {"medulla": 7, "vnc": 1, "isbi": 2}


def data_root() -> Path:
    """Folder of the real volumes: ``$EMQC_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("EMQC_DATA")
    return Path(env) if env else _REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class RealVolume:
    """A real EM volume with its labels.

    Attributes
    ----------
    name : str
        Key in :data:`DATASETS`.
    path : Path
        The HDF5 file.
    raw : (Z, Y, X) ndarray of uint8
    voxel_size_nm : (3,) tuple of float
    labels : dict of str to (Z, Y, X) ndarray
        ``neuron_ids`` (medulla); ``membranes``, ``synapses``, ``mitochondria``,
        ``classes`` (vnc); ``membranes`` (isbi).
    """

    name: str
    path: Path
    raw: np.ndarray
    voxel_size_nm: tuple[float, float, float]
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def load(name: str, *, labels: bool = True) -> RealVolume:
    """Load one dataset (whole; the largest is 20 MB of voxels).

    Raises
    ------
    SourceNotFoundError
        When the file is not under :func:`data_root` (set ``EMQC_DATA``).
    """
    import h5py

    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    path = data_root() / DATASETS[name]
    if not path.is_file():
        raise SourceNotFoundError(
            f"{path} not found: the real EM data live outside the repository. Set EMQC_DATA to "
            "the folder that holds medulla-fib-10nm/, vnc-sstem/ and isbi2012/."
        )
    with h5py.File(path, "r") as f:
        raw = f["raw"]
        attrs = raw.attrs if "resolution_nm_zyx" in raw.attrs else f.attrs
        voxel = tuple(float(v) for v in attrs["resolution_nm_zyx"])
        lab = {k: f["labels"][k][...] for k in f["labels"]} if labels and "labels" in f else {}
        return RealVolume(name, path, raw[...], voxel, lab)  # type: ignore[arg-type]


def split_z(name: str, part: Literal["train", "heldout"]) -> slice:
    """The z range of the ``train`` or ``heldout`` part of a dataset (see the module table)."""
    if name not in _HELDOUT_START:
        raise ValueError(f"name must be one of {sorted(_HELDOUT_START)}, got {name!r}")
    start = _HELDOUT_START[name]
    if part == "train":
        return slice(0, start - SPLIT_GAP[name])
    if part == "heldout":
        return slice(start, None)
    raise ValueError(f"part must be 'train' or 'heldout', got {part!r}")
