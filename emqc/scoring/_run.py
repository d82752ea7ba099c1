"""``emqc score``: sample (or take, or tile) blocks of a volume, score each on Dask, write tables.

Outputs in ``DIR`` (written into a hidden staging folder and renamed into place
only when complete, like ingest):

- ``blocks.parquet`` and ``blocks.csv``: one row per block: id, origin in voxels
  and µm, each preservation score, imaging quality, flags;
- ``summary.json``: per score the mean, median, bootstrap 95 % CI and verdict; the
  volume's root digest, how the blocks were chosen (``selection``: ``"sampled"``,
  ``"block-list"`` or ``"grid"``), the block list's seed and digest, the
  thresholds, and the SHA-256 of every network's weights file;
- ``blocks.json``: the block list scored;
- with ``all_blocks``, ``score_map.ome.zarr``: every grid block's scores as an
  OME-Zarr image (see :mod:`emqc.scoring._scoremap` and :mod:`emqc.scoring._grid`).

Only whole volumes are scored (:func:`emqc.volume.open_volume`), and a block list
drawn from another volume (a different root digest) is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import numpy as np

from .. import __version__
from .._atomic import publish_dir
from .._compute import compute
from ..errors import OutputExistsError, SamplingError
from ..metrics import REFERENCE_SYNAPSES_PER_UM3
from ..metrics._common import check_number
from ..polarity import POLARITIES
from ..sampling import BlockList
from ..sampling.volume import sample_volume
from ..volume import Volume, open_volume
from ._block import SCORES, BlockScores, Predict, score_block
from ._grid import grid_index, grid_shape, grid_volume
from ._scoremap import score_map_values, write_score_map
from ._summary import ScoreSummary, Thresholds, summarize_blocks

__all__ = ["ScoreRun", "score_volume"]

#: Name of the score map inside the output folder (``all_blocks`` only).
SCORE_MAP = "score_map.ome.zarr"


@dataclass(frozen=True)
class ScoreRun:
    """What :func:`score_volume` wrote.

    ``score_map`` is the path of ``score_map.ome.zarr`` with ``all_blocks``, else None.
    """

    out: Path
    blocks: BlockList
    scores: tuple[BlockScores, ...]
    summary: dict[str, ScoreSummary]
    score_map: Path | None = None


def _score_one(
    volume: Volume,
    origin,
    shape,
    predict: Predict | None,
    torch_threads: int,
    synapse_reference: float,
    polarity: str,
) -> BlockScores:  # type: ignore[no-untyped-def]
    if predict is None:
        import torch

        # Blocks are the unit of parallelism (one per core): each network call gets
        # its share of the cores, set explicitly (LocalCluster and Dask workers would
        # otherwise leave torch at 1 thread or at all cores per block).
        torch.set_num_threads(torch_threads)
    raw = volume.read(tuple(origin), tuple(shape))
    return score_block(
        raw,
        voxel_size_nm=volume.voxel_size_nm,
        predict=predict,
        synapse_reference_per_um3=synapse_reference,
        polarity=polarity,
    )


def score_volume(
    volume: str | Path | Volume,
    *,
    out: str | Path,
    blocks: BlockList | None = None,
    n: int | None = None,
    seed: int | None = None,
    block_um: float | None = None,
    block_vox: tuple[int, int, int] | None = None,
    all_blocks: bool = False,
    thresholds: Thresholds | None = None,
    predict: Predict | None = None,
    synapse_reference_per_um3: float = REFERENCE_SYNAPSES_PER_UM3,
    polarity: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> ScoreRun:
    """Score blocks of a volume and write the per-block table and the per-sample summary.

    Parameters
    ----------
    volume : path or Volume
        An ingested volume (refused unless whole).
    out : path
        Output folder (must not exist unless ``overwrite``).
    blocks : BlockList, optional
        Blocks to score (from ``emqc sample``); else ``n`` blocks are sampled with
        ``seed``, ``block_um`` / ``block_vox``.
    n : int, optional
        Number of blocks to sample.
    seed : int, optional
        Sampling seed (drawn and recorded when None); only with ``n``.
    block_um : float, optional
        Block edge in µm (default 2.56); with ``n`` or ``all_blocks``.
    block_vox : (3,) tuple of int, optional
        Block shape in voxels instead of ``block_um``.
    all_blocks : bool, optional
        Score every block of the regular grid that lies wholly inside tissue
        (:func:`~emqc.scoring._grid.grid_volume`) instead of a sample, and write
        ``score_map.ome.zarr`` beside the tables. Excludes ``blocks``, ``n``, ``seed``.
    thresholds : Thresholds, optional
        Verdict thresholds (default :class:`Thresholds`).
    predict : callable, optional
        ``predict(raw, voxel_size_nm) -> maps``; default: the committed networks.
    synapse_reference_per_um3 : float, optional
        Visible synapses per µm³ in well-preserved tissue of the kind scored (see
        :func:`emqc.metrics.synapse_traceability`); recorded in the summary.
    polarity : {"auto", "dark", "bright"}, optional
        Contrast polarity of the volume: detected per block (default), or declared
        (``"dark"``: membranes darker than cytoplasm; ``"bright"``: inverted before
        scoring); see :func:`~emqc.scoring.score_block`. Recorded in the summary.
    overwrite : bool, optional
        Replace ``out`` (the old folder stays until the new one is complete).
    progress : bool, optional
        Show a progress bar on standard error.

    Returns
    -------
    ScoreRun
    """
    if all_blocks and (blocks is not None or n is not None or seed is not None):
        raise ValueError(
            "all_blocks scores the whole grid: give it without blocks, n or seed "
            f"(got blocks={'a block list' if blocks is not None else None}, n={n}, seed={seed})"
        )
    vol = volume if isinstance(volume, Volume) else open_volume(volume)
    thresholds = thresholds or Thresholds()
    # refused before any work, as the metric would refuse it on every block
    check_number("synapse_reference_per_um3", synapse_reference_per_um3, lo=0, open_lo=True)
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists. Choose another --out, or pass --overwrite.")
    if predict is None:  # refuse a voxel size the networks cannot judge before any work
        from ..models._methods import check_voxel_size

        check_voxel_size(vol.voxel_size_nm, where=str(vol.path))
    selection = "grid" if all_blocks else "sampled" if blocks is None else "block-list"
    if all_blocks:
        blocks = grid_volume(vol, block_um=block_um, block_vox=block_vox)
    elif blocks is None:
        if n is None:
            raise ValueError(
                "give blocks (a block list), n (how many blocks to sample) or all_blocks=True"
            )
        blocks = sample_volume(vol, n=n, seed=seed, block_um=block_um, block_vox=block_vox)
    elif blocks.volume_digest != vol.root_digest:
        raise SamplingError(
            f"the block list was drawn from a volume with root digest {blocks.volume_digest[:16]}…, "
            f"not from {vol.path} ({vol.root_digest[:16]}…). Sample blocks of this volume with "
            "`emqc sample`, or give the volume the list belongs to."
        )
    for b in blocks.blocks:
        if any(
            o < 0 or o + s > n_
            for o, s, n_ in zip(b.origin_vox, b.shape_vox, vol.shape, strict=True)
        ):
            raise SamplingError(
                f"block {b.id} (origin {b.origin_vox}, shape {b.shape_vox}) lies outside {vol.path} "
                f"of shape {vol.shape}; the block list does not fit this volume."
            )

    tasks = [
        dask.delayed(_score_one)(
            vol,
            b.origin_vox,
            b.shape_vox,
            predict,
            _torch_threads(len(blocks.blocks)),
            synapse_reference_per_um3,
            polarity,
        )
        for b in blocks.blocks
    ]
    scores = tuple(
        compute(tasks, label=f"Scoring {len(tasks)} blocks of {vol.path.name}", progress=progress)
    )
    summary = dict(summarize_blocks(scores, thresholds=thresholds, seed=blocks.seed % 2**63))
    settings = {"synapse_reference_per_um3": float(synapse_reference_per_um3), "polarity": polarity}
    _write(out, vol, blocks, scores, summary, thresholds, selection, settings)
    return ScoreRun(out, blocks, scores, summary, out / SCORE_MAP if all_blocks else None)


def _torch_threads(n_blocks: int) -> int:
    """Torch threads per block: on local threads, the cores shared among concurrent blocks;
    on a distributed cluster, 1 (each worker thread scores one block)."""
    from .._compute import active_client

    cores = os.cpu_count() or 1
    if active_client() is not None:
        return 1
    return max(1, cores // max(1, min(n_blocks, cores)))


def block_rows(
    blocks: BlockList, scores: tuple[BlockScores, ...] | list[BlockScores]
) -> list[dict]:
    """The per-block table's rows: block id, origin in voxels and µm, every score and flag."""
    rows = []
    for b, s in zip(blocks.blocks, scores, strict=True):
        z, y, x = b.origin_vox
        zu, yu, xu = b.origin_um
        rows.append({"block_id": b.id, "z_vox": z, "y_vox": y, "x_vox": x,
                     "z_um": zu, "y_um": yu, "x_um": xu, **s.row()})  # fmt: skip
    return rows


def _write(  # type: ignore[no-untyped-def]
    out,
    vol,
    blocks,
    scores,
    summary,
    thresholds,
    selection,
    metric_settings,
) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(block_rows(blocks, scores))
    staging = out.with_name(f".{out.name}.emqc-partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        pq.write_table(table, staging / "blocks.parquet")
        pacsv.write_csv(table, staging / "blocks.csv")
        doc = {
            "format": "emqc.score-summary/1",
            "emqc_version": __version__,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "volume": str(vol.path),
            "volume_digest": vol.root_digest,
            "selection": selection,
            "seed": blocks.seed,
            # a grid is not random: its block list can only record seed 0 as the user's
            "seed_source": blocks.seed_source,
            "block_list_sha256": hashlib.sha256(blocks.to_json_bytes()).hexdigest(),
            "n_blocks": len(blocks.blocks),
            "block_shape_vox": list(blocks.parameters.block_shape_vox),
            "thresholds": thresholds.to_dict(),
            "metric_settings": metric_settings,
            "scores": {name: summary[name].to_dict() for name in SCORES},
            "n_too_poor_to_judge": sum(s.too_poor_to_judge for s in scores),
            "models": _model_digests(),
        }
        (staging / "summary.json").write_text(
            json.dumps(_nan_to_none(doc), indent=1, allow_nan=False) + "\n"
        )
        (staging / "blocks.json").write_bytes(blocks.to_json_bytes())
        if selection == "grid":
            _write_map(staging / SCORE_MAP, vol, blocks, scores)
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_map(path: Path, vol: Volume, blocks: BlockList, scores: tuple[BlockScores, ...]) -> None:
    block = blocks.parameters.block_shape_vox
    origins = np.array([b.origin_vox for b in blocks.blocks], dtype=np.int64).reshape(-1, 3)
    values = score_map_values(
        grid_shape(vol.shape, block_shape=block), grid_index(origins, block_shape=block), scores
    )
    write_score_map(path, values, block_shape_vox=block, voxel_size_nm=vol.voxel_size_nm,
                    volume=str(vol.path), volume_digest=vol.root_digest)  # fmt: skip


def _nan_to_none(value: Any) -> Any:
    """NaN (a score that could not be judged) as JSON null, recursively."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _model_digests() -> dict[str, Any]:
    from ..manifest import sha256_file
    from ..models import WEIGHTS_DIR

    return {
        p.stem: {"sha256": sha256_file(p), "file": p.name} for p in sorted(WEIGHTS_DIR.glob("*.pt"))
    }
