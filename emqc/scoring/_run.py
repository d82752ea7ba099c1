"""``emqc score``: sample (or take) blocks of a volume, score each on Dask, write tables.

Outputs in ``DIR`` (written into a hidden staging folder and renamed into place
only when complete, like ingest):

- ``blocks.parquet`` and ``blocks.csv``: one row per block: id, origin in voxels
  and µm, each preservation score, imaging quality, flags;
- ``summary.json``: per score the mean, median, bootstrap 95 % CI and verdict; the
  volume's root digest, the block list's seed and digest, the thresholds, and the
  SHA-256 of every network's weights file.

Only whole volumes are scored (:func:`emqc.volume.open_volume`), and a block list
drawn from another volume (a different root digest) is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask

from .. import __version__
from .._atomic import publish_dir
from .._compute import compute
from ..errors import OutputExistsError, SamplingError
from ..sampling import BlockList
from ..sampling.volume import sample_volume
from ..volume import Volume, open_volume
from ._block import SCORES, BlockScores, Predict, score_block
from ._summary import ScoreSummary, Thresholds, summarize_blocks

__all__ = ["ScoreRun", "score_volume"]


@dataclass(frozen=True)
class ScoreRun:
    """What :func:`score_volume` wrote."""

    out: Path
    blocks: BlockList
    scores: tuple[BlockScores, ...]
    summary: dict[str, ScoreSummary]


def _score_one(volume: Volume, origin, shape, predict: Predict | None) -> BlockScores:  # type: ignore[no-untyped-def]
    raw = volume.read(tuple(origin), tuple(shape))
    return score_block(raw, voxel_size_nm=volume.voxel_size_nm, predict=predict)


def score_volume(
    volume: str | Path | Volume,
    *,
    out: str | Path,
    blocks: BlockList | None = None,
    n: int | None = None,
    seed: int | None = None,
    block_um: float | None = None,
    block_vox: tuple[int, int, int] | None = None,
    thresholds: Thresholds | None = None,
    predict: Predict | None = None,
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
    thresholds : Thresholds, optional
        Verdict thresholds (default :class:`Thresholds`).
    predict : callable, optional
        ``predict(raw, voxel_size_nm) -> maps``; default: the committed networks.
    """
    vol = volume if isinstance(volume, Volume) else open_volume(volume)
    thresholds = thresholds or Thresholds()
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists. Choose another --out, or pass --overwrite.")
    if blocks is None:
        if n is None:
            raise ValueError("give either blocks (a block list) or n (how many blocks to sample)")
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
        dask.delayed(_score_one)(vol, b.origin_vox, b.shape_vox, predict) for b in blocks.blocks
    ]
    scores = tuple(
        compute(tasks, label=f"Scoring {len(tasks)} blocks of {vol.path.name}", progress=progress)
    )
    summary = dict(summarize_blocks(scores, thresholds=thresholds, seed=blocks.seed % 2**63))
    _write(out, vol, blocks, scores, summary, thresholds)
    return ScoreRun(out, blocks, scores, summary)


def _write(out, vol, blocks, scores, summary, thresholds) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = []
    for b, s in zip(blocks.blocks, scores, strict=True):
        z, y, x = b.origin_vox
        zu, yu, xu = b.origin_um
        rows.append({"block_id": b.id, "z_vox": z, "y_vox": y, "x_vox": x,
                     "z_um": zu, "y_um": yu, "x_um": xu, **s.row()})  # fmt: skip
    table = pa.Table.from_pylist(rows)
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
            "seed": blocks.seed,
            "seed_source": blocks.seed_source,
            "block_list_sha256": hashlib.sha256(blocks.to_json_bytes()).hexdigest(),
            "n_blocks": len(blocks.blocks),
            "block_shape_vox": list(blocks.parameters.block_shape_vox),
            "thresholds": thresholds.to_dict(),
            "scores": {name: summary[name].to_dict() for name in SCORES},
            "n_too_poor_to_judge": sum(s.too_poor_to_judge for s in scores),
            "models": _model_digests(),
        }
        (staging / "summary.json").write_text(
            json.dumps(_nan_to_none(doc), indent=1, allow_nan=False) + "\n"
        )
        (staging / "blocks.json").write_bytes(blocks.to_json_bytes())
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
