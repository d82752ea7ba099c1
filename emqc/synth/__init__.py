"""Seeded *synthetic* FIB-SEM-like neuropil: a stand-in for tests and demos.

Nothing this package makes is real tissue, and it must never be presented as such. It
gives volumes whose ground truth is known exactly (cells, membranes, extracellular
space, mitochondria, vesicle clouds, synapses, an optional blood vessel), so that
metrics can be tested by their properties and demos run without downloads.

Geometry (labels, in nanometres) is made first and contrast is rendered from it
separately, so a damage simulator can edit the geometry, for instance widen the
extracellular space, and render again with :func:`render_neuropil`.

Examples
--------
>>> from emqc.synth import synthetic_neuropil
>>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=(20.0, 8.0, 8.0), seed=3)
>>> vol.image.shape
(16, 48, 48)
>>> bool(vol.image[vol.extracellular].mean() > vol.image[vol.cell_ids > 0].mean())
True
"""

from ._neuropil import (
    SynapseRecord,
    SyntheticNeuropil,
    membrane_mask,
    render_neuropil,
    synthetic_neuropil,
)
from ._params import NeuropilParams

__all__ = [
    "NeuropilParams",
    "SynapseRecord",
    "SyntheticNeuropil",
    "membrane_mask",
    "render_neuropil",
    "synthetic_neuropil",
]
