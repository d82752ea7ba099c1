"""Units of batch work: what each reads and writes, and how to tell it is done.

A unit is done only when its output is present **and verified**, never because a
file exists:

======================  ==================================  ===========================================
unit                    writes                              done when
======================  ==================================  ===========================================
ingest (per sample)     ``samples/ID/volume.ome.zarr``      its manifest reads, every chunk re-hashes to
                                                            its recorded SHA-256 (``verify_volume``), and
                                                            its provenance names this source and voxel size
sample (per sample)     ``samples/ID/blocks.json``          it parses as a block list of this volume's
                                                            root digest, with this seed, count and shape
score (per block)       ``samples/ID/scores/BLOCK.json``    its embedded SHA-256 matches its content and
                                                            its declared inputs (volume digest, block list
                                                            digest, block, model weights digests) are
                                                            today's
roll-up (per sample)    ``samples/ID/blocks.parquet|csv``,  rewritten from verified score units each run
                        ``samples/ID/summary.json``         (cheap, deterministic)
======================  ==================================  ===========================================

Outputs hold no run times, so a run resumed after a kill writes the same bytes as an
uninterrupted one; when each run happened is logged apart, in ``runs/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..custody._canonical import canonical_bytes, sha256_hex
from ..errors import EmqcError, IncompleteVolumeError, IntegrityError
from ..sampling import Block, BlockList
from ..scoring import BlockScores
from ..scoring._run import _model_digests, _nan_to_none
from ._files import OutputFolder

__all__ = [
    "volume_rel",
    "blocks_rel",
    "score_rel",
    "volume_is_done",
    "block_list_is_done",
    "model_digests",
    "block_unit_inputs",
    "seal",
    "unseal",
    "write_score_unit",
    "read_score_unit",
    "output_digests",
]

SCORE_UNIT_FORMAT = "emqc.batch.block-score/1"


def volume_rel(sample_id: str) -> str:
    return f"samples/{sample_id}/volume.ome.zarr"


def blocks_rel(sample_id: str) -> str:
    return f"samples/{sample_id}/blocks.json"


def score_rel(sample_id: str, block_id: str) -> str:
    return f"samples/{sample_id}/scores/{block_id}.json"


def volume_is_done(
    location: str | Path, *, source: str, voxel_size_nm: tuple[float, float, float]
) -> tuple[bool, str]:
    """Whether an ingested volume is complete, intact and of this source; and why not.

    Re-hashes every chunk (as ``emqc verify`` does).
    """
    from ..manifest import read_manifest, verify_volume

    try:
        manifest = read_manifest(location)
    except (IncompleteVolumeError, IntegrityError, FileNotFoundError) as exc:
        return False, f"no complete volume yet ({getattr(exc, 'message', exc)})"
    prov = manifest.provenance
    if prov.get("source", {}).get("spec") != source:
        return False, f"it was ingested from {prov.get('source', {}).get('spec')!r}, not {source!r}"
    if [float(v) for v in prov.get("voxel_size_nm", [])] != list(voxel_size_nm):
        return False, f"its voxel size is {prov.get('voxel_size_nm')}, not {list(voxel_size_nm)}"
    report = verify_volume(location)
    if not report.ok:
        return False, "it fails verification: " + "; ".join(report.problems()[:3])
    return True, "verified"


def block_list_is_done(
    data: bytes | None, *, volume_digest: str, seed: int, n: int, shape: tuple[int, int, int]
) -> BlockList | None:
    """The stored block list if it is the one this plan asks for, else None."""
    if data is None:
        return None
    try:
        blocks = BlockList.from_json_bytes(data)
    except EmqcError:
        return None
    ok = (
        blocks.volume_digest == volume_digest
        and blocks.seed == seed
        and len(blocks.blocks) == n
        and tuple(blocks.parameters.block_shape_vox) == tuple(shape)
    )
    return blocks if ok else None


def model_digests() -> dict[str, Any]:
    """SHA-256 of every network's weights file, by network (what scores depend on)."""
    return _model_digests()


def block_unit_inputs(
    blocks: BlockList, block: Block, models: dict[str, Any], metric_settings: dict[str, Any]
) -> dict[str, Any]:
    """What a block's score depends on; a stored score counts only if these match.

    ``models`` is :func:`model_digests` (computed once per run), or a description of
    the stand-in predictor a test scores with; ``metric_settings`` the sample's
    :attr:`~emqc.batch.SampleEntry.metric_settings` (keyword arguments of
    :func:`emqc.scoring.score_block`, which the unit is scored with).
    """
    return {
        "volume_digest": blocks.volume_digest,
        "block_list_sha256": sha256_hex(blocks.to_json_bytes()),
        "block": block.to_dict(),
        "models": models,
        "metric_settings": dict(metric_settings),
    }


def seal(doc: dict[str, Any]) -> bytes:
    """Canonical JSON of ``doc`` with the SHA-256 of its own canonical bytes added."""
    doc = _nan_to_none(doc)
    return canonical_bytes({**doc, "sha256": sha256_hex(canonical_bytes(doc))}) + b"\n"


def unseal(data: bytes | None) -> dict[str, Any] | None:
    """The document sealed by :func:`seal`, or None if absent, unreadable or altered."""
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or "sha256" not in doc:
        return None
    claimed = doc.pop("sha256")
    return doc if claimed == sha256_hex(canonical_bytes(doc)) else None


def write_score_unit(
    folder: OutputFolder, rel: str, inputs: dict[str, Any], scores: BlockScores
) -> None:
    """Store one block's scores with their inputs, sealed (see :func:`seal`)."""
    doc = {
        "format": SCORE_UNIT_FORMAT,
        "inputs": inputs,
        "scores": scores.row(),
        "details": _plain(scores.details),
    }
    folder.write_bytes(rel, seal(doc))


def read_score_unit(folder: OutputFolder, rel: str, inputs: dict[str, Any]) -> BlockScores | None:
    """The stored scores of a block if they are verified and of these inputs, else None."""
    doc = unseal(folder.read_bytes(rel))
    if doc is None or doc.get("format") != SCORE_UNIT_FORMAT:
        return None
    if doc.get("inputs") != json.loads(canonical_bytes(_nan_to_none(inputs))):
        return None
    row = doc["scores"]

    def number(name: str) -> float:
        return float("nan") if row[name] is None else float(row[name])

    return BlockScores(
        membrane_integrity=number("membrane_integrity"),
        edema=number("edema"),
        synapse_traceability=number("synapse_traceability"),
        imaging_quality=number("imaging_quality"),
        too_poor_to_judge=bool(row["too_poor_to_judge"]),
        flags=tuple(f for f in row["flags"].split(";") if f),
        details=doc.get("details", {}),
    )


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain Python (JSON-ready)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def output_digests(root: str | Path) -> dict[str, str]:
    """SHA-256 of every result a local batch output holds, by path relative to it.

    Each volume counts as its root digest after re-hashing its chunks (so its
    manifest's timestamp does not count); every other file as the SHA-256 of its
    bytes, leftovers of a killed run included; ``runs/`` (when each run happened)
    is left out. Two runs of one study give equal dicts exactly when their results
    are the same.
    """
    from ..manifest import read_manifest, sha256_file, verify_volume

    root = Path(root)
    out: dict[str, str] = {}
    volumes = sorted(p for p in root.glob("samples/*/volume.ome.zarr") if p.is_dir())
    for vol in volumes:
        report = verify_volume(vol)
        out[vol.relative_to(root).as_posix()] = (
            read_manifest(vol).root_digest
            if report.ok
            else "altered: " + "; ".join(report.problems())
        )
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.startswith("runs/") or any(path.is_relative_to(v) for v in volumes):
            continue
        out[rel] = sha256_file(path)
    return out
