"""Helpers for tests of emqc and of code built on it (after ``numpy.testing``).

Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["intensity_maps", "synthetic_volumes", "synthetic_h5"]


def intensity_maps(
    raw: np.ndarray, voxel_size_nm: tuple[float, float, float]
) -> dict[str, np.ndarray]:
    """A fast, deterministic stand-in for the networks: maps read from grey levels alone.

    Dark voxels count as boundary (below 125 after a 1-voxel Gaussian), pale ones as
    extracellular (above 175), the darkest as synapse (below 70). It has the
    signature of :func:`emqc.scoring.score_block`'s ``predict``, so scoring
    pipelines can be tested in seconds; its scores mean nothing about preservation.
    """
    img = ndimage.gaussian_filter(raw.astype(np.float32), 1.0)
    return {
        "boundary": np.clip((125 - img) / 40, 0, 1).astype(np.float32),
        "extracellular": np.clip((img - 175) / 30, 0, 1).astype(np.float32),
        "synapse": np.clip((70 - img) / 30, 0, 1).astype(np.float32),
    }


def synthetic_volumes(
    folder: Path | str,
    sample_ids: Iterable[str],
    *,
    shape: tuple[int, int, int] = (32, 64, 64),
    voxel_nm: float = 10.0,
) -> dict[str, Path]:
    """Ingest one small SYNTHETIC neuropil volume per sample id (seeds 0, 1, ...) into ``folder``.

    Returns sample id -> ``folder/<id>.ome.zarr``: verified emqc volumes to test
    sampling, sessions and scoring on in seconds.
    """
    from .ingest import ingest
    from .sources._array import ArraySource
    from .synth import synthetic_neuropil

    out = {}
    for seed, sid in enumerate(sample_ids):
        image = synthetic_neuropil(shape, voxel_size_nm=voxel_nm, seed=seed).image
        out[sid] = Path(folder) / f"{sid}.ome.zarr"
        ingest(
            ArraySource(image, voxel_size_nm=(voxel_nm,) * 3, name=sid), out[sid], progress=False
        )
    return out


def synthetic_h5(
    path: Path | str,
    seed: int,
    *,
    shape: tuple[int, int, int] = (40, 96, 96),
    resolution_nm: list[float] | None = None,
) -> Path:
    """Write a small SYNTHETIC neuropil volume as HDF5 dataset ``raw``: a source to ingest.

    ``resolution_nm`` is stored as the dataset's ``resolution_nm_zyx`` attribute (the
    voxel size emqc's HDF5 reader finds); none by default.
    """
    import h5py

    from .synth import synthetic_neuropil

    image = synthetic_neuropil(shape, voxel_size_nm=10.0, seed=seed).image
    path = Path(path)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("raw", data=image, chunks=(min(20, shape[0]), 48, 48))
        if resolution_nm is not None:
            ds.attrs["resolution_nm_zyx"] = resolution_nm
    return path
