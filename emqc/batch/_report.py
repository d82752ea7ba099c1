"""The batch's tables: per sample (blocks and summary) and for the whole study.

All of them are functions of verified score units alone, with no run time in
them, so rewriting them on every run changes no byte unless a score changed.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from ..custody._canonical import canonical_bytes, sha256_hex
from ..sampling import BlockList
from ..scoring import SCORES, BlockScores, Thresholds, summarize_blocks
from ..scoring._run import _nan_to_none, block_rows
from ._files import OutputFolder

if TYPE_CHECKING:
    from ._run import BatchResult

__all__ = ["write_sample_tables", "write_study_summary", "STUDY_COLUMNS"]

#: Columns of ``OUTPUT/summary.csv``, one row per sample.
STUDY_COLUMNS = (
    "sample", "status", "stage", "reason", "volume_digest", "seed", "n_blocks",
    *(f"{name}_{part}" for name in SCORES for part in ("mean", "ci_low", "ci_high", "verdict")),
)  # fmt: skip


def write_sample_tables(
    folder: OutputFolder,
    sample_id: str,
    blocks: BlockList,
    scores: list[BlockScores],
    thresholds: Thresholds,
    models: dict[str, Any],
    metric_settings: dict[str, Any],
) -> dict[str, Any]:
    """Write ``samples/ID/blocks.parquet``, ``blocks.csv`` and ``summary.json``; return the summary."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(block_rows(blocks, scores))
    base = f"samples/{sample_id}"
    parquet, csv = io.BytesIO(), io.BytesIO()
    pq.write_table(table, parquet)
    pacsv.write_csv(table, csv)
    folder.write_bytes(f"{base}/blocks.parquet", parquet.getvalue())
    folder.write_bytes(f"{base}/blocks.csv", csv.getvalue())
    summary = summarize_blocks(scores, thresholds=thresholds, seed=blocks.seed % 2**63)
    doc = {
        "format": "emqc.score-summary/1",
        "sample": sample_id,
        "volume_digest": blocks.volume_digest,
        "selection": "sampled",
        "seed": blocks.seed,
        "seed_source": blocks.seed_source,
        "block_list_sha256": sha256_hex(blocks.to_json_bytes()),
        "n_blocks": len(blocks.blocks),
        "block_shape_vox": list(blocks.parameters.block_shape_vox),
        "thresholds": thresholds.to_dict(),
        "metric_settings": dict(metric_settings),
        "scores": {name: summary[name].to_dict() for name in SCORES},
        "n_too_poor_to_judge": sum(s.too_poor_to_judge for s in scores),
        "models": models,
    }
    doc = _nan_to_none(doc)
    folder.write_bytes(f"{base}/summary.json", (json.dumps(doc, indent=1) + "\n").encode())
    return doc


def write_study_summary(folder: OutputFolder, result: BatchResult) -> None:
    """Write ``OUTPUT/summary.json`` and ``summary.csv``: every sample, done or failed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = [study_row(s) for s in result.samples]
    doc = {
        "format": "emqc.batch.summary/1",
        "study": result.manifest.name,
        "seed": result.seed,
        "n_samples": len(rows),
        "n_failed": len(result.failed),
        "samples": rows,
    }
    folder.write_bytes("summary.json", canonical_bytes(_nan_to_none(doc)) + b"\n")
    columns = {c: [r.get(c) for r in rows] for c in STUDY_COLUMNS}
    table = pa.table({c: pa.array(v, type=_arrow_type(c)) for c, v in columns.items()})
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    folder.write_bytes("summary.csv", buf.getvalue())


def study_row(sample: Any) -> dict[str, Any]:
    """One sample's row of the study table (scores empty when it failed)."""
    row: dict[str, Any] = {
        "sample": sample.id, "status": sample.status,
        "stage": "" if sample.status == "done" else sample.stage, "reason": sample.reason,
        "volume_digest": sample.volume_digest or "", "seed": sample.seed,
        "n_blocks": sample.n_blocks,
    }  # fmt: skip
    scores = (sample.summary or {}).get("scores", {})
    for name in SCORES:
        s = scores.get(name, {})
        for part in ("mean", "ci_low", "ci_high"):
            row[f"{name}_{part}"] = s.get(part)
        row[f"{name}_verdict"] = s.get("verdict", "")
    return row


def _arrow_type(column: str) -> Any:
    import pyarrow as pa

    if column in ("seed", "n_blocks"):
        return pa.int64()
    if column.endswith(("_mean", "_ci_low", "_ci_high")):
        return pa.float64()
    return pa.string()
