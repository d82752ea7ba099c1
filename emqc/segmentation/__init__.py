"""Neuron segmentation from a boundary map: supervoxels by watershed, then agglomeration.

Pure numpy / scipy / scikit-image on (Z, Y, X) arrays; works for isotropic FIB-SEM
voxels and, section by section, for anisotropic serial-section data.

Examples
--------
>>> import numpy as np
>>> from emqc.segmentation import segment
>>> b = np.zeros((4, 32, 32), np.float32)
>>> b[:, 15:17, :] = 1.0
>>> int(segment(b, voxel_size_nm=(50.0, 5.0, 5.0)).max())
2
"""

from ._agglomerate import agglomerate, segment
from ._watershed import watershed_from_boundaries

__all__ = ["agglomerate", "segment", "watershed_from_boundaries"]
