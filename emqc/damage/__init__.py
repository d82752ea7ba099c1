"""Simulated preservation damage and imaging artifacts, with a severity from 0 to 1.

The validation of emqc's preservation scores applies these to the *real* FIB-SEM cube:
a score must fall as the severity of its damage rises, and must not move under an
imaging artifact. Every simulator is a pure function with one signature::

    result = edema(image, labels=ids, voxel_size_nm=(10, 10, 10), severity=0.5, seed=0)

``image`` is a (Z, Y, X) uint8 EM image with TEM-like polarity (membranes dark,
extracellular space pale; invert SBEM-style data first), ``labels`` its dense cell ids
(cell boundaries lie between ids). ``severity`` 0 returns the input byte for byte, 1 is
untraceable tissue (for damage) or a barely usable image (for artifacts); the same seed
gives the same output. Physical sizes are in nm and anisotropic voxels work. The result
is a :class:`Damaged` record with the new image, the labels after the edit, the
extracellular space and, for membrane breakdown, the boundary voxels that broke.

=========================  ==========================================================
Damage (:data:`DAMAGES`)   What it models
=========================  ==========================================================
``edema``                  expanded pale extracellular space, swollen pale processes,
                           a perivascular halo round a capillary
``membrane_breakdown``     gaps in membranes, vesicles and blebs along them
``shrinkage``              compressed, swirly, darker tissue, less extracellular space
``indistinct_neuropil``    membranes and fine texture fade, coarse intensity kept
=========================  ==========================================================

============================  =======================================================
Artifact (:data:`ARTIFACTS`)  What it models (labels unchanged, ``labels`` optional)
============================  =======================================================
``noise``                     Poisson-Gaussian detector noise, severity sets the SNR
``curtaining``                FIB stripes along the milling direction (y)
``contrast_inversion``        bright membranes (backscatter / SBEM polarity)
``resolution``                coarser voxels (8 nm -> 16 nm at severity 1)
``charging``                  smooth bright patches with a tail along the scan
``defocus``                   in-plane blur of an out-of-focus beam
============================  =======================================================

Examples
--------
>>> from emqc.synth import synthetic_neuropil
>>> from emqc.damage import DAMAGES, ARTIFACTS
>>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=0)
>>> for name, simulate in {**DAMAGES, **ARTIFACTS}.items():
...     out = simulate(vol.image, labels=vol.cell_ids, voxel_size_nm=10.0, severity=0.5, seed=0)
...     assert out.image.shape == vol.image.shape and out.image.dtype.name == "uint8"
>>> sorted(DAMAGES)
['edema', 'indistinct_neuropil', 'membrane_breakdown', 'shrinkage']
"""

from __future__ import annotations

from collections.abc import Callable

from ._artifacts import contrast_inversion, curtaining, noise
from ._beam import charging, defocus
from ._common import Damaged
from ._edema import edema
from ._membranes import membrane_breakdown
from ._neuropil import indistinct_neuropil
from ._resolution import resolution
from ._shrinkage import shrinkage

__all__ = [
    "ARTIFACTS",
    "DAMAGES",
    "Damaged",
    "charging",
    "contrast_inversion",
    "curtaining",
    "defocus",
    "edema",
    "indistinct_neuropil",
    "membrane_breakdown",
    "noise",
    "resolution",
    "shrinkage",
]

#: Preservation damage, by name: a score must respond to each.
DAMAGES: dict[str, Callable[..., Damaged]] = {
    "edema": edema,
    "membrane_breakdown": membrane_breakdown,
    "shrinkage": shrinkage,
    "indistinct_neuropil": indistinct_neuropil,
}

#: Imaging artifacts, by name: a preservation score must ignore each.
ARTIFACTS: dict[str, Callable[..., Damaged]] = {
    "noise": noise,
    "curtaining": curtaining,
    "contrast_inversion": contrast_inversion,
    "resolution": resolution,
    "charging": charging,
    "defocus": defocus,
}
