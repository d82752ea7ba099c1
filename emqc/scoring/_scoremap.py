"""The score map: one value per grid block and score, as an OME-Zarr image for heat maps.

``emqc score --all-blocks`` writes ``DIR/score_map.ome.zarr``::

    score_map.ome.zarr/
      zarr.json      group; attributes "ome" (NGFF 0.5 multiscales with axes c, z, y, x,
                     and omero channel labels) and "emqc" (what the map is)
      0/zarr.json    float32 (4, Gz, Gy, Gx): channel c, grid block (i, j, k)
      0/c/...        every chunk written (fill NaN)

Channels, in order, are :data:`MAP_CHANNELS`. A map voxel is NaN where its block was
not scored (not wholly inside tissue) or the score could not be judged: NaN in the
table, or a preservation score of a block too poor to judge (left out of the
summary likewise; imaging quality stays, since it is why). Map voxel ``(i, j, k)``
covers the block at level-0 voxels ``[i Bz, (i + 1) Bz) x ...``; its scale is the
block edge in nm and its translation puts its centre at that block's centre, so
the map overlays the volume in physical space in napari or neuroglancer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.codecs
from zarr.storage import LocalStore

from ..omezarr import NGFF_VERSION
from ..pyramid import level_translation
from ._block import SCORES, BlockScores

__all__ = ["MAP_CHANNELS", "SCORE_MAP_FORMAT", "score_map_values", "write_score_map"]

#: Channels of the score map, in order.
MAP_CHANNELS = (*SCORES, "imaging_quality")
SCORE_MAP_FORMAT = "emqc.score-map/1"
# Heat-map colours per channel (omero, hex RGB): one hue per score.
_COLORS = {
    "membrane_integrity": "00FF00",
    "edema": "FF00FF",
    "synapse_traceability": "FFFF00",
    "imaging_quality": "00FFFF",
}
# Largest chunk edge of the map: a map is small (one voxel per block), so one chunk
# usually holds a whole channel.
_MAX_CHUNK = 256


def score_map_values(
    grid_shape: Sequence[int], index: np.ndarray, scores: Sequence[BlockScores]
) -> np.ndarray:
    """The (C, Gz, Gy, Gx) float32 map of block scores, NaN where no block was scored.

    Parameters
    ----------
    grid_shape : sequence of 3 int
        Blocks along each axis (:func:`~emqc.scoring._grid.grid_shape`).
    index : (N, 3) ndarray of int
        Grid position of each scored block (:func:`~emqc.scoring._grid.grid_index`).
    scores : sequence of N BlockScores
        The blocks' scores, in the order of `index`.

    Returns
    -------
    (C, Gz, Gy, Gx) ndarray of float32
        Channel ``c`` is ``MAP_CHANNELS[c]``; NaN where a block was not scored or
        its score not judged (NaN, or too poor to judge for a preservation score).

    Examples
    --------
    >>> s = BlockScores(0.9, 0.1, 0.8, 0.7, too_poor_to_judge=False)
    >>> m = score_map_values((1, 1, 2), np.array([[0, 0, 1]]), [s])
    >>> m.shape, bool(np.isnan(m[:, 0, 0, 0]).all()), m[0, 0, 0, 1].round(2)
    ((4, 1, 1, 2), True, np.float32(0.9))
    """
    shape = tuple(int(g) for g in grid_shape)
    if len(shape) != 3 or any(g < 0 for g in shape):
        raise ValueError(f"grid_shape must be 3 non-negative ints (z, y, x), got {grid_shape!r}")
    idx = np.asarray(index)
    if idx.ndim != 2 or idx.shape[1] != 3 or idx.dtype.kind not in "iu":
        raise TypeError(f"index must be an (N, 3) integer array, got {idx.dtype} {idx.shape}")
    if len(idx) != len(scores):
        raise ValueError(f"index has {len(idx)} blocks but scores has {len(scores)}")
    if len(idx) and ((idx < 0).any() or (idx >= np.array(shape)).any()):
        raise ValueError(f"index holds a position outside grid_shape={shape}")
    values = np.full((len(MAP_CHANNELS), *shape), np.nan, dtype=np.float32)
    for (i, j, k), s in zip(idx.tolist(), scores, strict=True):
        for c, name in enumerate(MAP_CHANNELS):
            judged = name == "imaging_quality" or not s.too_poor_to_judge
            values[c, i, j, k] = getattr(s, name) if judged else np.nan
    return values


def write_score_map(
    path: str | Path,
    values: np.ndarray,
    *,
    block_shape_vox: Sequence[int],
    voxel_size_nm: Sequence[float],
    volume: str,
    volume_digest: str,
) -> None:
    """Write the map as an OME-Zarr image (NGFF 0.5, zarr 3) at `path`.

    Parameters
    ----------
    path : path
        Folder to create (``DIR/score_map.ome.zarr`` inside the staging folder).
    values : (C, Gz, Gy, Gx) ndarray of float32
        From :func:`score_map_values`.
    block_shape_vox : sequence of 3 int
        The grid's block shape in level-0 voxels.
    voxel_size_nm : sequence of 3 float
        The volume's level-0 voxel size (z, y, x) in nm.
    volume, volume_digest : str
        The scored volume's path and root digest, recorded in the attributes.
    """
    if values.ndim != 4 or values.shape[0] != len(MAP_CHANNELS) or values.dtype != np.float32:
        raise ValueError(
            f"values must be a ({len(MAP_CHANNELS)}, Gz, Gy, Gx) float32 array, got "
            f"{values.dtype} {values.shape}"
        )
    block = [int(b) for b in block_shape_vox]
    voxel = [float(v) for v in voxel_size_nm]
    block_nm = [b * v for b, v in zip(block, voxel, strict=True)]
    group = zarr.open_group(LocalStore(Path(path)), mode="w", zarr_format=3)
    array = group.create_array(
        "0",
        shape=values.shape,
        chunks=(1, *(max(1, min(g, _MAX_CHUNK)) for g in values.shape[1:])),
        dtype=np.float32,
        fill_value=np.nan,
        compressors=zarr.codecs.ZstdCodec(level=3),
        dimension_names=("c", "z", "y", "x"),
        config={"write_empty_chunks": True},
    )
    array[...] = values
    group.attrs["ome"] = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": "score_map",
                "axes": [
                    {"name": "c", "type": "channel"},
                    *({"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"),
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0, *block_nm]},
                            {
                                "type": "translation",
                                # centre of map voxel 0 on the centre of the first block
                                "translation": [0.0, *level_translation(block_nm, voxel)],
                            },
                        ],
                    }
                ],
                "metadata": {"description": "emqc score map: one voxel per scored grid block"},
            }
        ],
        "omero": {
            "channels": [_channel(name) for name in MAP_CHANNELS],
            "rdefs": {"model": "color", "defaultZ": 0, "defaultT": 0},
        },
    }
    group.attrs["emqc"] = {
        "format": SCORE_MAP_FORMAT,
        "description": (
            "emqc score map: one value per grid block of the volume, per channel; NaN where "
            "the block was not scored (not wholly inside tissue) or its score not judged"
        ),
        "channels": list(MAP_CHANNELS),
        "volume": volume,
        "volume_digest": volume_digest,
        "block_shape_vox": block,
        "block_shape_nm": block_nm,
        "voxel_size_nm": voxel,
        "grid_shape": list(values.shape[1:]),
        "edge_policy": "blocks start at voxel 0; blocks crossing a far face are dropped",
    }


def _channel(name: str) -> dict[str, Any]:
    return {
        "label": name,
        "color": _COLORS[name],
        "active": True,
        "coefficient": 1.0,
        "family": "linear",
        "inverted": False,
        "window": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0},
    }
