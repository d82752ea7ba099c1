"""The committed networks as one prediction method, for the accuracy benchmark and scoring.

Isotropic blocks (FIB-SEM) get their ``boundary`` map from ``fibsem3d``;
anisotropic blocks (serial sections, z voxel > 1.5× the in-plane one) get
``boundary`` (membranes), ``synapse`` and ``extracellular`` from ``sections2d``
run section by section.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._infer import Predictor

__all__ = ["predict", "predictor"]


@lru_cache(maxsize=4)
def predictor(name: str) -> Predictor:
    """The committed network ``name``, loaded once per process."""
    return Predictor.load(
        name, tile=96 if name == "fibsem3d" else 256, halo=24 if name == "fibsem3d" else 32
    )


def predict(
    raw: np.ndarray, voxel_size_nm: tuple[float, float, float], dataset: str = ""
) -> dict[str, np.ndarray]:
    """Probability maps for a block; ``dataset`` is ignored (the choice follows the voxel size)."""
    z, y, x = voxel_size_nm
    if z > 1.5 * min(y, x):
        maps = predictor("sections2d").predict(raw, voxel_size_nm=voxel_size_nm)
        return {
            "boundary": maps["membrane"],
            "synapse": maps["synapse"],
            "extracellular": maps["extracellular"],
        }
    return {"boundary": predictor("fibsem3d").predict(raw, voxel_size_nm=voxel_size_nm)["boundary"]}
