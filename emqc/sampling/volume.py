"""Sampling blocks of a stored volume: the glue between :class:`emqc.volume.Volume` and the core.

1. Open the volume (refused unless whole, see :func:`emqc.volume.open_volume`).
2. Read the coarsest pyramid level whose voxels are at most ``mask_voxel_nm``
   (default 160 nm) and compute the tissue mask on it.
3. Derive the generator from the seed and the volume's root digest
   (:func:`rng_for`): the same seed on the same data gives the same blocks.
4. Draw block origins uniformly among level-0 positions whose block lies wholly
   inside tissue, and record everything in a :class:`BlockList`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SamplingError
from ..volume import Volume, open_volume
from ._blocklist import BlockList, SamplingParameters, make_blocks
from ._positions import count_valid_positions, draw_seed, rng_for, sample_block_origins
from ._tissue import TISSUE_MASK_DEFAULTS, tissue_mask

__all__ = ["sample_volume", "write_block_list", "read_block_list", "DEFAULT_BLOCK_UM"]

#: Default block edge: 2.56 µm holds several synapses at cortical density (~1/µm³).
DEFAULT_BLOCK_UM = 2.56


def sample_volume(
    volume: Volume | str | Path,
    *,
    n: int,
    seed: int | None = None,
    block_um: float | None = None,
    block_vox: tuple[int, int, int] | None = None,
    allow_overlap: bool = False,
    mask_voxel_nm: float = 160.0,
) -> BlockList:
    """Draw ``n`` random blocks inside tissue, reproducibly.

    Parameters
    ----------
    volume : Volume or path
        An ingested volume (opened with a presence check if a path is given).
    n : int
        Number of blocks.
    seed : int, optional
        Random seed; drawn from the OS's secure source (and recorded) when None.
    block_um : float, optional
        Block edge in µm (default 2.56), converted per axis with the voxel size.
    block_vox : (3,) tuple of int, optional
        Block shape in level-0 voxels instead of ``block_um``.
    allow_overlap : bool, optional
        Let blocks overlap (default False).
    mask_voxel_nm : float, optional
        Coarsest voxel size at which the tissue mask is computed.

    Returns
    -------
    BlockList
        Blocks with the seed, its source, the volume digest and all parameters.

    Raises
    ------
    emqc.errors.SamplingError
        When the block does not fit in the volume or ``n`` blocks cannot be placed.
    emqc.errors.NoTissueError
        When no block position lies wholly inside tissue.
    """
    vol = volume if isinstance(volume, Volume) else open_volume(volume)
    block = block_shape_vox(vol, block_um=block_um, block_vox=block_vox)
    if any(b > s for b, s in zip(block, vol.shape, strict=True)):
        raise SamplingError(
            f"a block of {_fmt(block)} voxels ({_fmt_um(block, vol)} µm) does not fit in {vol.path}, "
            f"which is {_fmt(vol.shape)} voxels ({_fmt_um(vol.shape, vol)} µm). Use a smaller "
            "--block-um or --block-vox."
        )

    level, mask, mask_scale = stored_tissue_mask(vol, mask_voxel_nm)

    seed_source = "user" if seed is not None else "os-random"
    seed = draw_seed() if seed is None else int(seed)
    common = dict(mask_scale=mask_scale, volume_shape=vol.shape, block_shape=block)
    origins = sample_block_origins(
        mask, **common, n=n, rng=rng_for(seed, vol.root_digest), allow_overlap=allow_overlap
    )
    parameters = sampling_parameters(
        vol, block=block, level=level, mask=mask, mask_scale=mask_scale,
        allow_overlap=allow_overlap, n_valid_positions=count_valid_positions(mask, **common),
    )  # fmt: skip
    return BlockList(
        volume=str(vol.path),
        volume_digest=vol.root_digest,
        seed=seed,
        seed_source=seed_source,  # type: ignore[arg-type]
        parameters=parameters,
        blocks=make_blocks(origins, block_shape=block, voxel_size_nm=vol.voxel_size_nm),
    )


def write_block_list(blocks: BlockList, path: str | Path) -> None:
    """Write the canonical JSON bytes atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".emqc-tmp")
    tmp.write_bytes(blocks.to_json_bytes())
    os.replace(tmp, path)


def read_block_list(path: str | Path) -> BlockList:
    """Read and validate a block list written by :func:`write_block_list`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SamplingError(
            f"block list {path} does not exist; write one with `emqc sample`."
        ) from exc
    try:
        return BlockList.from_json_bytes(data)
    except SamplingError as exc:
        raise SamplingError(f"{path} is not a valid emqc block list: {exc.message}") from exc


def block_shape_vox(
    vol: Volume, *, block_um: float | None, block_vox: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    """Block shape in level-0 voxels: ``block_vox``, or an edge of ``block_um`` µm
    (default :data:`DEFAULT_BLOCK_UM`) converted per axis with the voxel size."""
    if block_um is not None and block_vox is not None:
        raise ValueError("give block_um or block_vox, not both")
    if block_vox is None:
        edge_nm = 1000.0 * (DEFAULT_BLOCK_UM if block_um is None else float(block_um))
        if not edge_nm > 0:
            raise ValueError(f"block_um must be positive, got {block_um}")
        block_vox = tuple(max(1, round(edge_nm / v)) for v in vol.voxel_size_nm)  # type: ignore[assignment]
    return tuple(int(b) for b in block_vox)  # type: ignore[return-value,union-attr]


def stored_tissue_mask(
    vol: Volume, mask_voxel_nm: float
) -> tuple[int, np.ndarray, tuple[int, int, int]]:
    """The tissue mask of a stored volume: (pyramid level, mask, level-0 voxels per mask voxel).

    Computed on the coarsest level whose voxels are at most ``mask_voxel_nm``.
    """
    level = _mask_level(vol, mask_voxel_nm)
    mask_voxel = vol.layout.levels[level].voxel_size_nm
    mask = tissue_mask(vol.arrays[level][...], voxel_size_nm=mask_voxel)
    mask_scale = tuple(round(m / v) for m, v in zip(mask_voxel, vol.voxel_size_nm, strict=True))
    return level, mask, mask_scale  # type: ignore[return-value]


def sampling_parameters(
    vol: Volume,
    *,
    block: tuple[int, int, int],
    level: int,
    mask: np.ndarray,
    mask_scale: tuple[int, int, int],
    allow_overlap: bool,
    n_valid_positions: int | None,
) -> SamplingParameters:
    """The record of how a block list of ``vol`` was chosen (sampled or a grid)."""
    return SamplingParameters(
        block_shape_vox=block,
        block_shape_um=tuple(b * v / 1000.0 for b, v in zip(block, vol.voxel_size_nm, strict=True)),
        voxel_size_nm=vol.voxel_size_nm,
        allow_overlap=allow_overlap,
        mask_level=level,
        mask_scale=mask_scale,
        tissue_mask=dict(TISSUE_MASK_DEFAULTS),
        mask_tissue_fraction=float(mask.mean()),
        n_valid_positions=n_valid_positions,
    )


def _mask_level(vol: Volume, mask_voxel_nm: float) -> int:
    """Coarsest level whose largest voxel edge is at most ``mask_voxel_nm`` (at least level 0)."""
    fine_enough = [
        i for i, lv in enumerate(vol.layout.levels) if max(lv.voxel_size_nm) <= mask_voxel_nm
    ]
    return max(fine_enough, default=0)


def _fmt(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _fmt_um(shape: tuple[int, ...], vol: Volume) -> str:
    return " x ".join(f"{n * v / 1000:.2f}" for n, v in zip(shape, vol.voxel_size_nm, strict=True))
