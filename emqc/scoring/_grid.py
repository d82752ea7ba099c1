"""The regular grid of blocks that ``emqc score --all-blocks`` scores.

The volume is tiled into non-overlapping blocks of one shape, starting at voxel 0
along each axis. Pure core: :func:`grid_shape`, :func:`grid_origins` and
:func:`grid_index` (arrays in, arrays out); :func:`grid_volume` is the glue that
computes the tissue mask of a stored volume, exactly as sampling does, and returns
the grid as a :class:`~emqc.sampling.BlockList`, the record ``emqc sample`` writes.

Edge policy (drawn after daisy's ``Task`` boundaries), along each axis of ``S``
voxels and a block edge of ``B``: blocks start at ``0, B, 2B, ...``; a block that
would stick out of the volume at the far face is dropped, never shrunk, padded or
shifted inward, so every block has the same shape and no two overlap. The last
``S mod B`` voxels of each axis are in no block::

    S = 10, B = 4
    voxel   0 1 2 3 4 5 6 7 8 9
            |-------|-------|---
             block 0 block 1  dropped: 2 voxels left over

    grid shape = S // B (here 2); grid block k covers voxels [k B, (k + 1) B)

Of those, only blocks wholly inside tissue are kept when a tissue mask is given:
a block is kept when every coarse mask voxel it touches, even in part, is tissue,
the rule :func:`~emqc.sampling.sample_block_origins` samples under (the check is
the sampler's own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import NoTissueError, SamplingError
from ..sampling import (
    BlockList,
    make_blocks,
)
from ..sampling._positions import _Problem
from ..sampling.volume import block_shape_vox, sampling_parameters, stored_tissue_mask
from ..volume import Volume, open_volume

__all__ = ["grid_index", "grid_origins", "grid_shape", "grid_volume"]

#: What a grid's block list records as its seed (with ``seed_source="grid"``): the
#: grid is not random; the seed only seeds the summary's bootstrap.
GRID_SEED = 0


def _triple(name: str, value: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray) or len(value) != 3:
        raise TypeError(f"{name} must be 3 ints (z, y, x), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{name} must be 3 ints (z, y, x), got {tuple(value)!r}")
        if v < 1:
            raise ValueError(f"{name} must be positive along every axis, got {tuple(value)}")
        out.append(int(v))
    return tuple(out)  # type: ignore[return-value]


def grid_shape(volume_shape: Sequence[int], *, block_shape: Sequence[int]) -> tuple[int, int, int]:
    """Number of whole blocks along each axis: ``volume_shape // block_shape``.

    Parameters
    ----------
    volume_shape : sequence of 3 int
        Level-0 volume shape (Z, Y, X) in voxels.
    block_shape : sequence of 3 int
        Block shape in voxels.

    Returns
    -------
    (3,) tuple of int
        Zero along an axis where the block is longer than the volume.

    Examples
    --------
    >>> grid_shape((10, 64, 65), block_shape=(4, 32, 32))
    (2, 2, 2)
    """
    shape = _triple("volume_shape", volume_shape)
    block = _triple("block_shape", block_shape)
    return tuple(s // b for s, b in zip(shape, block, strict=True))  # type: ignore[return-value]


def grid_origins(
    volume_shape: Sequence[int],
    *,
    block_shape: Sequence[int],
    valid: np.ndarray | None = None,
    mask_scale: Sequence[int] | None = None,
) -> np.ndarray:
    """Corners of the grid blocks that lie wholly inside the volume (and the tissue).

    Parameters
    ----------
    volume_shape : sequence of 3 int
        Level-0 volume shape (Z, Y, X) in voxels.
    block_shape : sequence of 3 int
        Block shape in voxels; blocks start at multiples of it (see the module
        docstring for the edge policy: blocks crossing a far face are dropped).
    valid : (Zm, Ym, Xm) ndarray of bool, optional
        Tissue mask at a coarse level, as for
        :func:`~emqc.sampling.sample_block_origins`; when given, only blocks that
        touch tissue voxels alone are kept.
    mask_scale : sequence of 3 int, optional
        Level-0 voxels per mask voxel; required with `valid`.

    Returns
    -------
    origins : (N, 3) ndarray of int64
        Level-0 (z, y, x) corners in C order of the grid (x fastest). Without
        `valid`, ``N = prod(volume_shape // block_shape)``.

    Raises
    ------
    TypeError, ValueError
        For shapes that are not 3 positive ints, or `valid` without `mask_scale`.

    Examples
    --------
    >>> grid_origins((10, 8, 9), block_shape=(4, 8, 4)).tolist()
    [[0, 0, 0], [0, 0, 4], [4, 0, 0], [4, 0, 4]]
    """
    counts = grid_shape(volume_shape, block_shape=block_shape)
    block = np.array(_triple("block_shape", block_shape), dtype=np.int64)
    if (valid is None) != (mask_scale is None):
        raise ValueError("give valid and mask_scale together (the mask and its scale), or neither")
    index = np.indices(counts, dtype=np.int64).reshape(3, -1).T
    origins = index * block
    if valid is None or len(origins) == 0:
        return origins
    problem = _Problem(valid, mask_scale, volume_shape, block_shape)  # type: ignore[arg-type]
    return origins[problem.is_valid(origins)]


def grid_index(origins: np.ndarray, *, block_shape: Sequence[int]) -> np.ndarray:
    """Grid position ``(i, j, k)`` of each block: its origin divided by the block shape.

    Parameters
    ----------
    origins : (N, 3) ndarray of int
        Block corners from :func:`grid_origins` (or a grid block list's ``origin_vox``).
    block_shape : sequence of 3 int
        The grid's block shape.

    Returns
    -------
    (N, 3) ndarray of int64

    Raises
    ------
    ValueError
        If an origin is not a non-negative multiple of the block shape (not a grid block).
    """
    block = np.array(_triple("block_shape", block_shape), dtype=np.int64)
    o = np.asarray(origins)
    if o.ndim != 2 or o.shape[1] != 3 or o.dtype.kind not in "iu":
        raise TypeError(f"origins must be an (N, 3) integer array, got {o.dtype} {o.shape}")
    o = o.astype(np.int64)
    off_grid = (o < 0).any(axis=1) | (o % block != 0).any(axis=1)
    if off_grid.any():
        raise ValueError(
            f"origin {o[off_grid][0].tolist()} is not on the grid of blocks of "
            f"{block.tolist()} voxels (each coordinate a non-negative multiple of the block)"
        )
    return o // block


def grid_volume(
    volume: Volume | str | Path,
    *,
    block_um: float | None = None,
    block_vox: tuple[int, int, int] | None = None,
    mask_voxel_nm: float = 160.0,
) -> BlockList:
    """Every grid block of a stored volume that lies wholly inside tissue, as a block list.

    1. The block shape comes from ``block_um`` or ``block_vox`` as for
       :func:`~emqc.sampling.volume.sample_volume`.
    2. The tissue mask is computed on the same pyramid level as sampling uses.
    3. The grid (module docstring) is filtered to the blocks wholly inside tissue.

    Parameters
    ----------
    volume : Volume or path
        An ingested volume (opened with a presence check if a path is given).
    block_um : float, optional
        Block edge in µm (default 2.56), converted per axis with the voxel size.
    block_vox : (3,) tuple of int, optional
        Block shape in level-0 voxels instead of ``block_um``.
    mask_voxel_nm : float, optional
        Coarsest voxel size at which the tissue mask is computed.

    Returns
    -------
    BlockList
        Blocks ``B0001``… in C order of the grid; the grid position of each is
        :func:`grid_index` of its ``origin_vox``. The list records seed 0 with
        ``seed_source="grid"`` (:data:`GRID_SEED`): nothing was drawn, and the seed
        only seeds the summary's bootstrap.

    Raises
    ------
    emqc.errors.SamplingError
        When the block does not fit in the volume.
    emqc.errors.NoTissueError
        When no grid block lies wholly inside tissue.
    """
    vol = volume if isinstance(volume, Volume) else open_volume(volume)
    block = _block_shape(vol, block_um, block_vox)
    if any(b > s for b, s in zip(block, vol.shape, strict=True)):
        raise SamplingError(
            f"a block of {_fmt(block)} voxels does not fit in {vol.path}, which is "
            f"{_fmt(vol.shape)} voxels; use a smaller --block-um or --block-vox."
        )
    level, mask, mask_scale = stored_tissue_mask(vol, mask_voxel_nm)
    origins = grid_origins(vol.shape, block_shape=block, valid=mask, mask_scale=mask_scale)
    if len(origins) == 0:
        n_grid = int(np.prod(grid_shape(vol.shape, block_shape=block)))
        raise NoTissueError(
            f"none of the {n_grid} grid blocks of {_fmt(block)} voxels of {vol.path} lies wholly "
            f"inside tissue (the tissue mask covers {mask.mean():.1%} of the volume); use a "
            "smaller --block-um or --block-vox, or check the volume."
        )
    parameters = sampling_parameters(
        vol, block=block, level=level, mask=mask, mask_scale=mask_scale, allow_overlap=False,
        n_valid_positions=None,  # counts random positions; a grid has no use for it
    )  # fmt: skip
    return BlockList(
        volume=str(vol.path),
        volume_digest=vol.root_digest,
        seed=GRID_SEED,
        seed_source="grid",
        parameters=parameters,
        blocks=make_blocks(origins, block_shape=block, voxel_size_nm=vol.voxel_size_nm),
    )


def _block_shape(
    vol: Volume, block_um: float | None, block_vox: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    """Block shape in voxels as sampling computes it, with ``block_vox`` checked strictly."""
    if block_vox is not None and block_um is None:
        block_vox = _triple("block_vox", block_vox)
    return block_shape_vox(vol, block_um=block_um, block_vox=block_vox)


def _fmt(shape: Sequence[int]) -> str:
    return " x ".join(map(str, shape))
